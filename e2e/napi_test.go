package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// inServerNetdev runs fn in the server namespace with the server's end
// and the netdev family.
func inServerNetdev(t *testing.T, tb *testbed.Testbed, fn func(ifc *net.Interface, nd *nic.Netdev) error) {
	t.Helper()
	err := tb.InServer(func() error {
		ifc, err := net.InterfaceByName(tb.ServerIf)
		if err != nil {
			return err
		}
		nd, err := nic.OpenNetdev()
		if err != nil {
			return err
		}
		return fn(ifc, nd)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// napiState reads, in the server namespace, the NAPI instances of the
// server's end and their knobs (napi-get), and the -napi-state-dir record
// for it.
func napiState(t *testing.T, tb *testbed.Testbed, dir string) (map[uint32]nic.NAPIValues, *nic.NAPIRecord) {
	t.Helper()
	vals := map[uint32]nic.NAPIValues{}
	var rec *nic.NAPIRecord
	inServerNetdev(t, tb, func(ifc *net.Interface, nd *nic.Netdev) error {
		napis, err := nd.NAPIs(ifc.Index)
		if err != nil {
			return err
		}
		for _, n := range napis {
			v := nic.NAPIValues{}
			for k := range nic.NumNAPIKnobs {
				if x, ok := n.Knob(k); ok {
					v[k] = x
				}
			}
			vals[n.ID] = v
		}
		rec, _, err = nic.ReadNAPIRecord(dir, ifc.Index)
		return err
	})
	return vals, rec
}

// xhttpd -napi-suspend on a veth of two queues, as this kernel (6.18)
// reports it: the program's attach gives the veth a NAPI instance per rx
// queue, but queue-get ties none to a queue, so xhttpd says for each queue
// that its knobs are not set (no-napi), in its log and in /metrics, serves
// all the same, and changes no knob; it records nothing. In interrupt mode
// the flag is ignored with a warning.
func TestNAPISuspendVeth(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Queues: 2, Prefix: "xhnapi"})
	dir := t.TempDir()
	srv := startServer(t, tb, newSite(t).dir, "-mode", "hybrid", "-napi-suspend", "1ms", "-napi-state-dir", dir, "-admin", "127.0.0.1:9100")

	f := scrape(t, tb, "127.0.0.1:9100")["xhttpd_napi_knob_info"]
	if f == nil || len(f.GetMetric()) != 6 {
		t.Errorf("xhttpd_napi_knob_info: %v, want 3 knobs of 2 queues", f)
	} else {
		for _, m := range f.GetMetric() {
			if label(m, "result") != "no-napi" {
				t.Errorf("queue %s %s: %s, want no-napi", label(m, "queue"), label(m, "knob"), label(m, "result"))
			}
		}
	}
	vals, rec := napiState(t, tb, dir)
	t.Logf("while serving: NAPI instances %v, record %+v", vals, rec)
	if len(vals) != 2 || rec != nil {
		t.Errorf("while serving: %d NAPI instances, record %+v; want 2 (XDP on) and none", len(vals), rec)
	}
	for id, v := range vals {
		if fmt.Sprint(v) != fmt.Sprint(nic.NAPIValues{nic.DeferHardIRQs: 0, nic.GROFlushTimeout: 0, nic.IRQSuspendTimeout: 0}) {
			t.Errorf("NAPI %d: %v, want the three knobs at veth's 0", id, v)
		}
	}
	srv.Stop()
	log := srv.Output()
	for q := range 2 {
		want := fmt.Sprintf(`msg="NAPI knobs not set" iface=%s queue=%d napi=0 knobs="defer-hard-irqs gro-flush-timeout irq-suspend-timeout" result=no-napi err="nic: %s rx queue %d: the driver names no NAPI instance for it (queue-get)"`, tb.ServerIf, q, tb.ServerIf, q)
		if !strings.Contains(log, want) {
			t.Errorf("no line %s", want)
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("state dir after exit: %v %v, want empty", ents, err)
	}

	srv = startServer(t, tb, newSite(t).dir, "-mode", "interrupt", "-napi-suspend", "1ms", "-napi-state-dir", dir)
	srv.Stop()
	if log := srv.Output(); !strings.Contains(log, "NAPI suspension ignored in interrupt mode") || strings.Contains(log, "NAPI knobs not set") {
		t.Errorf("interrupt mode: want the warning and nothing tried:\n%s", log)
	}
}

// After a SIGKILL, the next start puts back what the dead xhttpd had
// recorded. On veth xhttpd sets nothing (TestNAPISuspendVeth), so the
// record a killed xhttpd leaves on a NIC that ties queues to NAPI
// instances is made here as xhttpd makes it: with GRO on, veth keeps its
// NAPI instances without XDP, so knobs set on them outlive a process; the
// test sets them with napi-set and writes the record (nic.NAPIRecord at
// nic.NAPIRecordPath), naming a process that has exited. The doctor warns
// of it; xhttpd, started without -napi-suspend, restores the values read
// before and removes the record. Then an xhttpd with -napi-suspend is
// SIGKILLed: having set nothing on veth, it leaves no record, and the
// knobs are as they were.
func TestNAPISuspendRestoredAfterKill(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Queues: 2, Prefix: "xhnapk"})
	dir := t.TempDir()
	if out, err := tb.ServerCmd(context.Background(), "ethtool", "-K", tb.ServerIf, "gro", "on").CombinedOutput(); err != nil {
		t.Fatalf("ethtool -K %s gro on (make tools installs ethtool): %v\n%s", tb.ServerIf, err, out)
	}
	before, _ := napiState(t, tb, dir)
	if len(before) != 2 {
		t.Fatalf("with GRO on: NAPI instances %v, want one per rx queue", before)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	set := nic.NAPIValues{nic.DeferHardIRQs: 100, nic.GROFlushTimeout: 50000, nic.IRQSuspendTimeout: 20000000}
	inServerNetdev(t, tb, func(ifc *net.Interface, nd *nic.Netdev) error {
		rec := nic.NAPIRecord{Ifindex: ifc.Index, Ifname: ifc.Name, PID: dead.Process.Pid, Time: time.Now().UTC()}
		q := 0
		for id, old := range before {
			rec.Changes = append(rec.Changes, nic.NAPIChange{ID: id, Queues: []int{q}, Old: old, New: set})
			q++
		}
		path, err := nic.NAPIRecordPath(dir, ifc.Index)
		if err != nil {
			return err
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil { // first, as xhttpd does
			return err
		}
		for id := range before {
			for k, v := range set {
				if err := nd.SetNAPI(id, k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	left, rec := napiState(t, tb, dir)
	t.Logf("left by a dead process: %v, record %+v", left, rec)
	if rec == nil {
		t.Fatal("no record")
	}
	fs, _ := doctor(t, tb, tb.ServerIf, "-napi-state-dir", dir)
	if f := fs["napi record"]; f.Level != "warn" || !strings.Contains(f.Detail, fmt.Sprintf("pid %d, which died without restoring them", dead.Process.Pid)) {
		t.Errorf("doctor: %+v", f)
	}

	srv := startServer(t, tb, newSite(t).dir, "-mode", "hybrid", "-napi-state-dir", dir)
	after, rec := napiState(t, tb, dir)
	t.Logf("after the next start: %v, record %+v", after, rec)
	if fmt.Sprint(after) != fmt.Sprint(before) || rec != nil {
		t.Errorf("after the next start: %v, record %+v; want %v as before, and no record", after, rec, before)
	}
	srv.Stop()
	if n := strings.Count(srv.Output(), `msg="NAPI knobs restored (an earlier process's record)"`); n != 2 {
		t.Errorf("%d log lines of knobs restored, want one per instance:\n%s", n, srv.Output())
	}

	srv = startServer(t, tb, newSite(t).dir, "-mode", "busy", "-napi-suspend", "1ms", "-napi-state-dir", dir)
	if err := srv.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	after, rec = napiState(t, tb, dir)
	if fmt.Sprint(after) != fmt.Sprint(before) || rec != nil {
		t.Errorf("after a SIGKILL of xhttpd -napi-suspend on veth: %v, record %+v; want %v and none", after, rec, before)
	}
	if !strings.Contains(srv.Output(), "result=no-napi") {
		t.Errorf("with GRO on too, want no-napi:\n%s", srv.Output())
	}
}
