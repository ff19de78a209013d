// Command rclone is rclone with the uring backend built in: every standard
// rclone command, the local backend and uring remotes. Build with
// -tags allbackends for every rclone backend as well.
//
// A remote called "uring:" is predefined, so `rclone copy uring:/a
// uring:/b` works without a config file. It is a default only: a remote
// called uring in the config file, or one defined by environment variables
// (RCLONE_CONFIG_URING_TYPE=...), is used instead.
package main

import (
	"github.com/rclone/rclone/cmd"
	_ "github.com/rclone/rclone/cmd/all" // rclone's standard commands
	"github.com/rclone/rclone/fs"
	_ "github.com/uringsync/uring-sync/backend/uring"
)

func main() {
	// rclone reads a remote's settings from its environment variables
	// before its config file: the default is given where the config file
	// would be read (environment variables still come first), and only
	// when the file has no section of that name.
	configFileGet := fs.ConfigFileGet
	fs.ConfigFileGet = func(section, key string) (string, bool) {
		if section == "uring" && key == "type" && !fs.ConfigFileHasSection(section) {
			return "uring", true
		}
		return configFileGet(section, key)
	}
	cmd.Main()
}
