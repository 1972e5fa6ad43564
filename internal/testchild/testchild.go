// Package testchild lets a test binary be a child process of one of its
// own tests, for what a test cannot do in its own process: be killed
// (SIGKILL) while it holds something, or run from the start in another
// namespace. The test runs os.Args[0] with an environment variable set;
// TestMain, through Main, then runs the child instead of the tests.
package testchild

import (
	"os"
	"testing"
)

// Main is a TestMain: with env set, it runs child with env's value and
// exits with its status; otherwise it runs the tests.
func Main(m *testing.M, env string, child func(value string) int) {
	if v := os.Getenv(env); v != "" {
		os.Exit(child(v))
	}
	os.Exit(m.Run())
}
