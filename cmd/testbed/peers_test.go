package main

import (
	"bytes"
	"strings"
	"testing"
	"text/template"
)

// Both configurations fill in with every field, and name them where they
// belong.
func TestPeerConfigs(t *testing.T) {
	c := peerConfig{Dir: "/tmp/d", Root: "/tmp/site", V4: "198.18.0.1", V6: "2001:2::1", User: "www-data", Group: "www-data"}
	for file, want := range map[string][]string{
		"nginx.conf":   {"listen 198.18.0.1:80", "listen [2001:2::1]:80", "root /tmp/site;", "pid /tmp/d/nginx.pid;", "worker_processes 1;", "access_log off;", "sendfile on;", "open_file_cache "},
		"apache2.conf": {"Listen 198.18.0.1:80", "Listen [2001:2::1]:80", "DocumentRoot /tmp/site", "PidFile /tmp/d/apache2.pid", "mod_mpm_prefork.so", "User www-data"},
	} {
		tm, err := template.ParseFS(peerConfigs, "peers/"+file)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := tm.Option("missingkey=error").Execute(&b, c); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, w := range want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s lacks %q", file, w)
			}
		}
	}
	for _, name := range []string{"nginx", "apache"} {
		path, args, ok := peerCommand(name, "/tmp/d")
		if !ok || path != peerBinaries[name].path || !strings.Contains(strings.Join(args, " "), "/tmp/d/") {
			t.Errorf("peerCommand(%s) = %s %v %v", name, path, args, ok)
		}
	}
	if _, _, ok := peerCommand("hybrid", "/tmp/d"); ok {
		t.Error("hybrid is not a peer")
	}
}
