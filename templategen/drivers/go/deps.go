//go:build tools

package main

// The rendered packages import these; naming them here keeps `go mod tidy` from
// dropping them from go.mod, and `go mod download` fetches everything a build needs.
import (
	_ "github.com/redis/go-redis/v9"
	_ "golang.org/x/sync/singleflight"
)
