package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/xhttpd/xhttpd/testbed"
)

type finding struct{ Check, Level, Detail, Fix string }

// doctor runs xhttpd doctor -json on the server's end and returns its
// findings by check, and its exit status.
func doctor(t *testing.T, tb *testbed.Testbed, iface string) (map[string]finding, int) {
	t.Helper()
	out, code := runXhttpd(t, tb, nil, "doctor", "-iface", iface, "-json")
	var fs []finding
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatalf("doctor -json: %v\n%s", err, out)
	}
	m := map[string]finding{}
	for _, f := range fs {
		m[f.Check] = f
	}
	return m, code
}

// xhttpd doctor reads the interface and changes nothing: on a fresh veth
// every finding passes; with xhttpd serving, the attached program fails the
// check with the command that shows whose it is; on lo, which has no
// address to serve, the addresses fail.
func TestDoctor(t *testing.T) {
	testbed.RequireRoot(t)
	tb := testbed.NewT(t, testbed.Options{Queues: 2})

	fs, code := doctor(t, tb, tb.ServerIf)
	if code != 0 {
		t.Errorf("exit %d on a fresh veth: %+v", code, fs)
	}
	for check, want := range map[string]string{
		"driver":      "veth",
		"checksums":   "trusted",
		"addresses":   "198.18.0.1/24",
		"mtu":         "1500",
		"queues":      "2 rx queues",
		"rss":         "serve every queue",
		"xdp program": "none attached",
		"busy poll":   "busy_poll",
	} {
		if f, ok := fs[check]; !ok || !strings.Contains(f.Detail, want) {
			t.Errorf("%s: %+v, want a detail with %q", check, f, want)
		}
	}

	startServer(t, tb, newSite(t).dir)
	fs, code = doctor(t, tb, tb.ServerIf)
	if f := fs["xdp program"]; code != 1 || f.Level != "fail" || !strings.Contains(f.Fix, "bpftool prog show id") {
		t.Errorf("with xhttpd attached: exit %d, %+v", code, f)
	}
	// It served on throughout: the doctor changed nothing.
	if err := get(context.Background(), tb.ClientDialer(), "198.18.0.1:80"); err != nil {
		t.Errorf("after the doctor: %v", err)
	}

	fs, code = doctor(t, tb, "lo")
	if f := fs["addresses"]; code != 1 || f.Level != "fail" {
		t.Errorf("lo: exit %d, addresses %+v", code, f)
	}
}
