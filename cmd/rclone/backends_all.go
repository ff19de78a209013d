//go:build allbackends

package main

// Every rclone backend (s3, sftp, drive, ...) beside uring.
import _ "github.com/rclone/rclone/backend/all"
