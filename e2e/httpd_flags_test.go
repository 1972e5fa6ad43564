package e2e

import (
	"testing"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// A bad HTTP flag is one clear line on stderr and a non-zero exit.
func TestHTTPDFlagErrors(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	root := t.TempDir()
	base := []string{"-iface", tb.ServerIf, "-root", root, "-stack", "kernel"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"proxy scheme", []string{"-proxy", "ftp://198.18.0.1:21", "-dynamic", "/cgi-bin/"}, "Config.Proxy"},
		{"proxy without paths", []string{"-proxy", "http://198.18.0.1:8080"}, "-proxy needs"},
		{"dynamic without proxy", []string{"-dynamic", "/api/"}, "need -proxy"},
		{"dynamic not a path", []string{"-proxy", "http://198.18.0.1:8080", "-dynamic", "api"}, "Config.Dynamic"},
		{"negative cache", []string{"-cache-max", "-1"}, "-cache-max"},
		{"zero timeout", []string{"-header-timeout", "0s"}, "-header-timeout"},
		{"zero conns", []string{"-max-conns", "0"}, "-max-conns"},
		{"access log dir", []string{"-access-log", root + "/no/such/dir/access.log"}, "-access-log"},
	} {
		out, code := runXhttpd(t, tb, nil, append(append([]string{}, base...), c.args...)...)
		checkOneLine(t, c.name, out, code, c.want)
	}
}
