package main

import (
	"errors"
	"flag"

	"github.com/xhttpd/xhttpd/httpd"
)

// httpFlags registers the flags that configure the HTTP server and returns
// a function that, after fs.Parse, checks them and builds httpd's Config.
func httpFlags(fs *flag.FlagSet) func() (httpd.Config, error) {
	root := fs.String("root", "", "directory of files to serve (required)")
	return func() (httpd.Config, error) {
		if *root == "" {
			return httpd.Config{}, errors.New("-root is required")
		}
		return httpd.Config{Root: *root}, nil
	}
}
