package xdpnet

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/nic"
)

func TestCheckNAPISuspend(t *testing.T) {
	for d, ok := range map[time.Duration]bool{
		0: true, 20 * time.Millisecond: true, NAPIGROFlushTimeout + 1: true,
		NAPIGROFlushTimeout: false, time.Microsecond: false, -time.Millisecond: false,
	} {
		if err := CheckNAPISuspend(d); (err == nil) != ok {
			t.Errorf("%v: %v, want ok %v", d, err, ok)
		}
	}
}

// captureLog sends slog's default logger to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	var b bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&b, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &b
}

// One line per queue and outcome, with the knobs and their values, and why
// for a knob not set.
func TestLogNAPI(t *testing.T) {
	b := captureLog(t)
	noNAPI := errors.New("nic: veth0 rx queue 1: the driver names no NAPI instance for it (queue-get)")
	var rs []nic.NAPIResult
	for k := range nic.NumNAPIKnobs {
		rs = append(rs, nic.NAPIResult{Queue: 0, NAPI: 8193, Knob: k, Outcome: nic.NAPISet, Value: []uint64{100, 50000, 20000000}[k]})
	}
	for k := range nic.NumNAPIKnobs {
		rs = append(rs, nic.NAPIResult{Queue: 1, Knob: k, Outcome: nic.NAPINoInstance, Err: noNAPI})
	}
	logNAPI("veth0", "set", rs)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b)
	}
	for i, want := range []string{
		`level=INFO msg="NAPI knobs set" iface=veth0 queue=0 napi=8193 knobs="defer-hard-irqs=100 gro-flush-timeout=50000 irq-suspend-timeout=20000000"`,
		`level=WARN msg="NAPI knobs not set" iface=veth0 queue=1 napi=0 knobs="defer-hard-irqs gro-flush-timeout irq-suspend-timeout" result=no-napi err="nic: veth0 rx queue 1: the driver names no NAPI instance for it (queue-get)"`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d:\n%s\nwant\n%s", i, lines[i], want)
		}
	}
}

// Interrupt mode: a warning that says why, and nothing asked of the kernel.
func TestNAPISuspendInterruptMode(t *testing.T) {
	b := captureLog(t)
	p := &Path{}
	if err := p.suspendIRQs(&net.Interface{Name: "veth0", Index: 1 << 30}, Options{Mode: irq.Interrupt, NAPISuspend: time.Millisecond}); err != nil || p.NAPI() != nil {
		t.Errorf("%v, %v", err, p.NAPI())
	}
	if !strings.Contains(b.String(), "ignored in interrupt mode") || !strings.Contains(b.String(), "SO_PREFER_BUSY_POLL") {
		t.Errorf("log: %s", b)
	}
}
