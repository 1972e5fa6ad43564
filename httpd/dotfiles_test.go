package httpd

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestHidden(t *testing.T) {
	for name, want := range map[string]bool{
		".":                              false,
		"index.html":                     false,
		"docs/style.css":                 false,
		"a.b/c..d":                       false,
		".git":                           true,
		".git/config":                    true,
		".env":                           true,
		"docs/.htpasswd":                 true,
		"docs/.hidden/x":                 true,
		".well-known":                    false,
		".well-known/acme-challenge/tok": false,
		".well-known/security.txt":       false,
		".well-known/.secret":            true,
		".well-knownx/a":                 true,
		"docs/.well-known/x":             true,
	} {
		if got := hidden(name); got != want {
			t.Errorf("hidden(%q) = %v, want %v", name, got, want)
		}
	}
}

// dotFixture adds dot names to the fixture: a repository, an environment
// file, a file in a dot directory below docs, and /.well-known/.
func dotFixture(t *testing.T) *fixture {
	fx := newFixture(t)
	for name, body := range map[string]string{
		".git/config":                    "[core]\n",
		".env":                           "SECRET=1\n",
		"docs/.hidden/x.txt":             "x\n",
		".well-known/acme-challenge/tok": "token\n",
		".well-known/.secret":            "no\n",
	} {
		writeOld(t, filepath.Join(fx.root, name), []byte(body))
	}
	return fx
}

var dotRequests = []struct {
	path   string
	public bool // served by default
}{
	{"/.git/config", false},
	{"/.git/", false},
	{"/.env", false},
	{"/%2egit/config", false},
	{"/docs/./.hidden/x.txt", false},
	{"/docs/.hidden/x.txt", false},
	{"/.well-known/.secret", false},
	{"/.well-known/acme-challenge/tok", true},
	{"/docs/style.css", true},
}

// By default dot names are 404 (as if absent, from the cache and from disk
// alike), except /.well-known/; with ServeDotFiles they are served.
func TestDotFiles(t *testing.T) {
	for _, cacheMax := range []int64{0, -1} {
		fx := dotFixture(t)
		s, addr := startServer(t, Config{Root: fx.root, CacheMax: cacheMax})
		for _, r := range dotRequests {
			resp, body, _ := roundTrip(t, addr, "GET "+r.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			want := map[bool]int{true: 200, false: 404}[r.public]
			if resp.StatusCode != want {
				t.Errorf("cache %d: GET %s: %d, want %d (%.30q)", cacheMax, r.path, resp.StatusCode, want, body)
			}
			if strings.Contains(string(body), "SECRET") || strings.Contains(string(body), "[core]") {
				t.Errorf("cache %d: GET %s leaked %q", cacheMax, r.path, body)
			}
		}
		if got := s.Stats().Hidden; got != 7 {
			t.Errorf("cache %d: Stats().Hidden = %d, want 7", cacheMax, got)
		}
		if cacheMax == 0 {
			if n := s.Stats().CacheFiles; n != 6 {
				t.Errorf("the cache holds %d files, want the 6 not hidden", n)
			}
		}

		fx = dotFixture(t)
		_, addr = startServer(t, Config{Root: fx.root, CacheMax: cacheMax, ServeDotFiles: true})
		for _, r := range dotRequests {
			if r.path == "/.git/" {
				continue // a directory without index.html: 404 anyway
			}
			resp, _, _ := roundTrip(t, addr, "GET "+r.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Errorf("cache %d, ServeDotFiles: GET %s: %d, want 200", cacheMax, r.path, resp.StatusCode)
			}
		}
	}
}

// With ProxyMisses a hidden name is a miss like any other: the upstream
// answers it, and the file under Root is not served.
func TestDotFilesProxyMisses(t *testing.T) {
	fx := dotFixture(t)
	u := upstream(t)
	_, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, ProxyMisses: true})
	resp, body, _ := roundTrip(t, addr, "GET /.env HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /.env ") {
		t.Errorf("GET /.env with ProxyMisses: %d %.40q, want the upstream's answer", resp.StatusCode, body)
	}
}
