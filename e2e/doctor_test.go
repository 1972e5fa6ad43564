package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

type finding struct {
	Check, Level, Detail, Fix string
	Data                      json.RawMessage
}

// doctor runs xhttpd doctor -json on the server's end and returns its
// findings by check, and its exit status.
func doctor(t *testing.T, tb *testbed.Testbed, iface string, args ...string) (map[string]finding, int) {
	t.Helper()
	out, code := runXhttpd(t, tb, nil, append([]string{"doctor", "-iface", iface, "-json"}, args...)...)
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

// data decodes a finding's data into v.
func data(t *testing.T, f finding, v any) {
	t.Helper()
	if err := json.Unmarshal(f.Data, v); err != nil {
		t.Errorf("%s: data %s: %v", f.Check, f.Data, err)
	}
}

// xhttpd doctor reads the interface and changes nothing: on a fresh veth of
// two queues it finds driver veth, native XDP with redirect but no
// zero-copy (copy only), two rx and two tx channels, and two queues without
// IRQs, and nothing fails; -cpus with one CPU for two queues is a warning
// with the ethtool command; with xhttpd serving, the attached program fails
// the check with whose it is; on lo, which has no address to serve, the
// addresses fail.
func TestDoctor(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Queues: 2})

	fs, code := doctor(t, tb, tb.ServerIf)
	if code != 0 {
		t.Errorf("exit %d on a fresh veth: %+v", code, fs)
	}
	for check, want := range map[string]string{
		"driver":       "veth",
		"checksums":    "trusted",
		"addresses":    "198.18.0.1/24",
		"mtu":          "1500",
		"queues":       "2 rx queues",
		"rss":          "serve every queue",
		"channels":     "rx 2 of 2, tx 2 of 2",
		"xdp program":  "none attached",
		"xdp features": "native XDP: basic, redirect",
		"zero-copy":    "copy only",
		"offloads":     "LRO and hardware GRO off",
		"busy poll":    "busy_poll",
		"queue 0":      "no IRQ",
		"queue 1":      "no IRQ",
	} {
		if f, ok := fs[check]; !ok || !strings.Contains(f.Detail, want) {
			t.Errorf("%s: %+v, want a detail with %q", check, f, want)
		}
	}
	for check, level := range map[string]string{"xdp features": "ok", "zero-copy": "warn", "channels": "ok", "offloads": "ok", "queue 0": "ok", "queue 1": "ok"} {
		if f := fs[check]; f.Level != level {
			t.Errorf("%s: level %q, want %q", check, f.Level, level)
		}
	}
	if _, ok := fs["queue 2"]; ok {
		t.Errorf("a third queue on a veth of two: %+v", fs["queue 2"])
	}
	var xdp struct {
		Features []string `json:"xdp_features"`
	}
	data(t, fs["xdp features"], &xdp)
	if !slices.Contains(xdp.Features, "basic") || !slices.Contains(xdp.Features, "redirect") || slices.Contains(xdp.Features, "xsk-zerocopy") {
		t.Errorf("xdp features %q: want basic and redirect, without xsk-zerocopy", xdp.Features)
	}
	var ch struct{ Rx, Tx, Combined int }
	data(t, fs["channels"], &ch)
	if ch.Rx != 2 || ch.Tx != 2 || ch.Combined != 0 {
		t.Errorf("channels %+v, want rx 2, tx 2, as created", ch)
	}

	// -cpus: the doctor reads xhttpd's list; two queues on one CPU share it.
	fs, _ = doctor(t, tb, tb.ServerIf, "-cpus", "0")
	if f := fs["channels"]; f.Level != "warn" || f.Fix != "ethtool -L "+tb.ServerIf+" rx 1" {
		t.Errorf("-cpus 0 with 2 queues: %+v", f)
	}
	var q1 struct {
		LoopCPU *int `json:"loop_cpu"`
	}
	data(t, fs["queue 1"], &q1)
	if q1.LoopCPU == nil || *q1.LoopCPU != 0 {
		t.Errorf("queue 1's loop CPU with -cpus 0: %v, want 0", q1.LoopCPU)
	}
	if out, code := runXhttpd(t, tb, nil, "doctor", "-iface", tb.ServerIf, "-cpus", "9999"); code != 2 || !strings.Contains(out, "-cpus") {
		t.Errorf("-cpus 9999: exit %d: %s", code, out)
	}

	startServer(t, tb, newSite(t).dir)
	fs, code = doctor(t, tb, tb.ServerIf)
	f := fs["xdp program"]
	if code != 1 || f.Level != "fail" || !strings.Contains(f.Fix, "bpftool prog show id") {
		t.Errorf("with xhttpd attached: exit %d, %+v", code, f)
	}
	if !strings.Contains(f.Detail, "xhttpd_steer") || !strings.Contains(f.Detail, "(xhttpd)") {
		t.Errorf("with xhttpd attached: %q, want the program's name and its holder", f.Detail)
	}
	// veth has a NAPI instance per queue while XDP is on (6.18 does not
	// tie them to queues); the doctor shows them either way.
	if f, ok := fs["napi instances"]; !strings.Contains(fs["queue 0"].Detail, "NAPI ") && (!ok || !strings.Contains(f.Detail, "NAPI ")) {
		t.Errorf("with XDP on: no NAPI instance shown: queue 0 %q, napi instances %+v", fs["queue 0"].Detail, f)
	}
	t.Logf("with xhttpd attached: queue 0: %s; napi instances: %s", fs["queue 0"].Detail, fs["napi instances"].Detail)
	// It served on throughout: the doctor changed nothing.
	if err := testbed.ProbeHTTP(context.Background(), tb.ClientDialer(), "198.18.0.1:80"); err != nil {
		t.Errorf("after the doctor: %v", err)
	}

	fs, code = doctor(t, tb, "lo")
	if f := fs["addresses"]; code != 1 || f.Level != "fail" {
		t.Errorf("lo: exit %d, addresses %+v", code, f)
	}
	if f := fs["xdp features"]; f.Level != "warn" || !strings.Contains(f.Detail, "no native XDP") {
		t.Errorf("lo: xdp features %+v", f)
	}
}
