// Command rclone is rclone with the uring backend built in: every standard
// rclone command, the local backend and uring remotes. Build with
// -tags allbackends for every rclone backend as well.
//
// A remote called "uring:" is predefined (as if by the environment
// variable RCLONE_CONFIG_URING_TYPE=uring), so `rclone copy uring:/a uring:/b`
// works without a config file. Set RCLONE_CONFIG_URING_TYPE yourself to
// define it differently.
package main

import (
	"os"

	"github.com/rclone/rclone/cmd"
	_ "github.com/rclone/rclone/cmd/all" // rclone's standard commands
	_ "github.com/uringsync/uring-sync/backend/uring"
)

func main() {
	if _, ok := os.LookupEnv("RCLONE_CONFIG_URING_TYPE"); !ok {
		_ = os.Setenv("RCLONE_CONFIG_URING_TYPE", "uring")
	}
	cmd.Main()
}
