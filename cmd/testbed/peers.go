package main

import (
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"
)

// The peers' configurations, kept here and filled in for each run.
//
//go:embed peers/nginx.conf peers/apache2.conf
var peerConfigs embed.FS

// peerConfig is what the configurations are filled in with.
type peerConfig struct {
	Dir         string // the run's directory for configuration, pid files, temporary files
	Root        string // the site
	V4, V6      string // the server's addresses
	User, Group string // Apache's children run as these (it refuses root)
}

// peerBinaries are the peers' programs and the Debian packages that have
// them.
var peerBinaries = map[string]struct{ path, pkg string }{
	"nginx":  {"/usr/sbin/nginx", "nginx"},
	"apache": {"/usr/sbin/apache2", "apache2"},
}

// writePeerConfigs fills in the configuration of every peer in names into
// dir, and makes the site readable by Apache's unprivileged children.
func writePeerConfigs(names []string, c peerConfig) error {
	for _, name := range names {
		b, ok := peerBinaries[name]
		if !ok {
			continue
		}
		if _, err := exec.LookPath(b.path); err != nil {
			return fmt.Errorf("%s is missing: apt-get install %s (make bench installs it)", b.path, b.pkg)
		}
		file := map[string]string{"nginx": "nginx.conf", "apache": "apache2.conf"}[name]
		t, err := template.ParseFS(peerConfigs, "peers/"+file)
		if err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(c.Dir, file))
		if err != nil {
			return err
		}
		err = t.Execute(f, c)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s configuration: %w", name, err)
		}
	}
	// Apache drops to User before it reads a file; MkdirTemp made the
	// directories 0700.
	for _, d := range []string{c.Root, c.Dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// peerCommand returns the command line of a peer, or false for a server
// that is not one.
func peerCommand(name, dir string) (path string, args []string, ok bool) {
	switch name {
	case "nginx":
		return peerBinaries[name].path, []string{"-c", filepath.Join(dir, "nginx.conf"), "-p", dir, "-e", "stderr"}, true
	case "apache":
		return peerBinaries[name].path, []string{"-f", filepath.Join(dir, "apache2.conf"), "-DFOREGROUND"}, true
	}
	return "", nil, false
}
