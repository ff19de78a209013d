# bash completion for uring-sync(1).  Installed as
# share/bash-completion/completions/uring-sync; needs nothing from the
# bash-completion package, so `source`-ing this file also works.

_uring_sync() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local prev=${COMP_WORDS[COMP_CWORD - 1]}
  local opts='-h --help --version -j --jobs -c --chunk-size --buffer-memory -q --queue-depth
    --iowq-workers -p --preserve -n --dry-run -v --verbose --progress
    --exclude --engine --fail-fast -I --ignore-times -u --update --checksum
    --delete --delete-excluded -o --owner -g --group --numeric-ids -X --xattrs -A --acls
    -x --one-file-system -L --copy-links -H --hard-links
    -S --sparse -a --archive --json
    --verify --fsync'
  local engines='auto uring sync'

  # "--engine=u": readline splits at '=', so the words are --engine, =, u.
  if [[ $prev == = && $COMP_CWORD -ge 2 ]]; then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  elif [[ $cur == = ]]; then
    cur=''
  fi

  case $prev in
    --engine)
      mapfile -t COMPREPLY < <(compgen -W "$engines" -- "$cur")
      return
      ;;
    -j | --jobs | -c | --chunk-size | --buffer-memory | -q | --queue-depth | --iowq-workers | --exclude)
      # A number, a size or a pattern: nothing sensible to offer.
      COMPREPLY=()
      return
      ;;
  esac

  # Options, unless a "--" came before: after it every word is SRC or DST.
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ ${COMP_WORDS[i]} == -- ]] && break
  done
  if [[ $cur == -* && $i -eq $COMP_CWORD ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    return
  fi

  # SRC and DST: any path.
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}

complete -F _uring_sync uring-sync
