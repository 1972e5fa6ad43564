package nic

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/xhttpd/xhttpd/internal/testchild"
	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// napiChildEnv makes the test binary a process that sets the knobs on a
// veth and waits to be killed (TestNAPIKnobsKilledVeth): "DIR IFNAME".
const napiChildEnv = "XHTTPD_NAPI_CHILD"

func TestMain(m *testing.M) { testchild.Main(m, napiChildEnv, napiChild) }

func napiChild(arg string) int {
	dir, ifname, _ := strings.Cut(arg, " ")
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	nd, err := OpenNetdev()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	h, rs, err := SetNAPIKnobs(tiedNetdev{nd}, dir, ifc.Index, ifname, []int{0, 1}, suspendValues)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("set %d\n", count(rs, NAPISet))
	time.Sleep(time.Hour) // until killed
	runtime.KeepAlive(h)  // its file holds the lock
	return 0
}

// tiedNetdev is the netdev family of a veth with rx queue i tied to its
// i-th NAPI instance by ID. veth (6.18) has one instance per rx queue while
// XDP is on, but queue-get names none, so SetNAPIKnobs alone sets nothing
// there (TestNAPIKnobsVeth checks that first). Which queue gets which
// instance does not matter here: all get the same values. Everything else,
// napi-get and napi-set included, is the kernel's.
type tiedNetdev struct{ *Netdev }

func (n tiedNetdev) Queues(ifindex int) ([]NetdevQueue, error) {
	qs, err := n.Netdev.Queues(ifindex)
	if err != nil {
		return nil, err
	}
	napis, err := n.NAPIs(ifindex)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, x := range napis {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	for i, q := range qs {
		if q.Rx && int(q.ID) < len(ids) {
			qs[i].NAPIID = ids[q.ID]
		}
	}
	return qs, nil
}

// withXDP attaches an XDP_PASS program to the testbed's server end in
// native mode (veth then makes a NAPI instance per rx queue) until the
// test ends, and returns its index.
func withXDP(t *testing.T, tb *testbed.Testbed) int {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	var ifindex int
	err = tb.InServer(func() error {
		l, err := netlink.LinkByName(tb.ServerIf)
		if err != nil {
			return err
		}
		ifindex = l.Attrs().Index
		return netlink.LinkSetXdpFdWithFlags(l, prog.FD(), nl.XDP_FLAGS_DRV_MODE)
	})
	prog.Close() // the interface holds it now
	if err != nil {
		t.Fatalf("attach XDP to %s: %v", tb.ServerIf, err)
	}
	t.Cleanup(func() {
		tb.InServer(func() error {
			l, err := netlink.LinkByName(tb.ServerIf)
			if err == nil {
				err = netlink.LinkSetXdpFdWithFlags(l, -1, nl.XDP_FLAGS_DRV_MODE)
			}
			return err
		})
	})
	return ifindex
}

// napiValues reads the interface's NAPI instances' knobs, by instance.
func napiValues(t *testing.T, nd *Netdev, ifindex int) map[uint32]NAPIValues {
	t.Helper()
	napis, err := nd.NAPIs(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]NAPIValues{}
	for _, n := range napis {
		v := NAPIValues{}
		for k := range NumNAPIKnobs {
			if x, ok := n.Knob(k); ok {
				v[k] = x
			}
		}
		out[n.ID] = v
	}
	return out
}

// What this kernel does on a veth with XDP on (two queues): queue-get
// ties no rx queue to a NAPI instance, so SetNAPIKnobs reports no-napi for
// every knob and sets nothing; napi-get lists two instances with all three
// knobs; napi-set takes each knob, and napi-get reads the values back; and
// Restore puts back what was read.
func TestNAPIKnobsVeth(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Queues: 2, Prefix: "xhnapi"})
	ifindex := withXDP(t, tb)
	dir := t.TempDir()
	err := tb.InServer(func() error {
		nd, err := OpenNetdev()
		if err != nil {
			return err
		}
		qs, err := nd.Queues(ifindex)
		if err != nil {
			return err
		}
		t.Logf("queue-get: %+v", qs)
		for _, q := range qs {
			if q.NAPIID != 0 {
				t.Errorf("queue-get ties %+v to a NAPI instance: veth did not (6.18); SetNAPIKnobs would now set its knobs, and the e2e test expecting no-napi must change", q)
			}
		}
		h, rs, err := SetNAPIKnobs(nd, dir, ifindex, tb.ServerIf, []int{0, 1}, suspendValues)
		if err != nil || h != nil || count(rs, NAPINoInstance) != 6 {
			t.Errorf("on veth as the kernel reports it: %v %v: %s; want 6 no-napi", h, err, outcomes(rs))
		}
		t.Logf("SetNAPIKnobs: %s (%v)", outcomes(rs), rs[0].Err)

		before := napiValues(t, nd, ifindex)
		t.Logf("read: %v", before)
		if len(before) != 2 {
			t.Fatalf("%d NAPI instances, want one per rx queue with XDP on", len(before))
		}
		for id, v := range before {
			if len(v) != int(NumNAPIKnobs) {
				t.Errorf("NAPI %d reports %v: want all three knobs (Linux 6.13+)", id, v)
			}
		}
		h, rs, err = SetNAPIKnobs(tiedNetdev{nd}, dir, ifindex, tb.ServerIf, []int{0, 1}, suspendValues)
		if err != nil || count(rs, NAPISet) != 6 {
			t.Fatalf("set, queues tied: %v: %s", err, outcomes(rs))
		}
		set := napiValues(t, nd, ifindex)
		t.Logf("set %v, read back: %v", suspendValues, set)
		for id, v := range set {
			if fmt.Sprint(v) != fmt.Sprint(suspendValues) {
				t.Errorf("NAPI %d read back %v, want %v", id, v, suspendValues)
			}
		}
		rs, err = h.Restore()
		if err != nil || count(rs, NAPIRestored) != 6 {
			t.Errorf("restore: %v: %s", err, outcomes(rs))
		}
		after := napiValues(t, nd, ifindex)
		t.Logf("restored, read back: %v", after)
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("after restore %v, want %v", after, before)
		}
		if rec, _, err := ReadNAPIRecord(dir, ifindex); rec != nil || err != nil {
			t.Errorf("record left: %+v %v", rec, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A process that set the knobs on a veth is killed (SIGKILL): they stay
// set, its record stays, no longer held; the next start's RestoreNAPIKnobs
// puts back the values from before and removes the record.
func TestNAPIKnobsKilledVeth(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Queues: 2, Prefix: "xhnapk"})
	ifindex := withXDP(t, tb)
	dir := t.TempDir()
	var nd *Netdev
	var before map[uint32]NAPIValues
	in := func(fn func() error) {
		t.Helper()
		if err := tb.InServer(fn); err != nil {
			t.Fatal(err)
		}
	}
	in(func() (err error) {
		if nd, err = OpenNetdev(); err == nil {
			before = napiValues(t, nd, ifindex)
		}
		return err
	})

	child := tb.ServerCmd(context.Background(), os.Args[0])
	child.Env = append(os.Environ(), napiChildEnv+"="+dir+" "+tb.ServerIf)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "set ")); err != nil || n != 6 {
		t.Fatalf("child: %q %v; want 6 knobs set", line, err)
	}
	check := func(when string, want map[uint32]NAPIValues, record, held bool) {
		t.Helper()
		in(func() error {
			got := napiValues(t, nd, ifindex)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: %v, want %v", when, got, want)
			}
			rec, h, err := ReadNAPIRecord(dir, ifindex)
			if (rec != nil) != record || h != held || err != nil {
				t.Errorf("%s: record %+v held %v, %v; want a record %v, held %v", when, rec, h, err, record, held)
			}
			t.Logf("%s: %v", when, got)
			return nil
		})
	}
	set := map[uint32]NAPIValues{}
	for id := range before {
		set[id] = suspendValues
	}
	check("set by the child", set, true, true)

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	check("after SIGKILL", set, true, false)

	in(func() error {
		rs, err := RestoreNAPIKnobs(nd, dir, ifindex)
		if err != nil || count(rs, NAPIRestored) != 6 {
			t.Errorf("restore at the next start: %v: %s", err, outcomes(rs))
		}
		return nil
	})
	check("restored at the next start", before, false, false)
}
