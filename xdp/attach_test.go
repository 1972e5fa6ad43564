//go:build linux

package xdp

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/internal/testchild"
	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// childEnv makes the test binary an attaching child (see TestMain).
const childEnv = "XHTTPD_XDP_TEST_CHILD"

func TestMain(m *testing.M) { testchild.Main(m, childEnv, attachChild) }

// attachChild enters the namespace passed as fd 3, attaches to the given
// ifindex, says so on stdout and waits (at most a minute) to be killed.
func attachChild(ifindex string) int {
	runtime.LockOSThread()
	idx, err := strconv.Atoi(ifindex)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := netns.Set(netns.NsHandle(3)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := Attach(idx, testConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("attached %s\n", s.Mode())
	time.Sleep(time.Minute)
	return 3
}

// attachIn attaches in ns (interface indexes are per namespace).
func attachIn(ns netns.NsHandle, ifindex int, mode Mode) (*Steering, error) {
	var s *Steering
	err := testbed.InNamespace(ns, func() error {
		var err error
		s, err = Attach(ifindex, Config{Ports: testConfig.Ports, Addrs: testConfig.Addrs, Mode: mode})
		return err
	})
	return s, err
}

// newBridge creates a bridge in ns: an interface without native XDP.
func newBridge(t *testing.T, ns netns.NsHandle) int {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	d := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "xhxdpbr"}}
	if err := h.LinkAdd(d); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	if err := h.LinkSetUp(d); err != nil {
		t.Fatalf("set bridge up: %v", err)
	}
	l, err := h.LinkByName("xhxdpbr")
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

var netlinkMode = map[Mode]uint32{
	ModeNative:  nl.XDP_ATTACHED_DRV,
	ModeGeneric: nl.XDP_ATTACHED_SKB,
}

// TestAttach attaches to a veth in each mode, checks that the interface
// shows the program, closes, and checks that it is gone.
func TestAttach(t *testing.T) {
	testbedtest.RequireRoot(t)
	for _, tc := range []struct {
		mode, want Mode
	}{
		{ModeAuto, ModeNative}, // veth has native XDP
		{ModeNative, ModeNative},
		{ModeGeneric, ModeGeneric},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			ns, ifindex, s := attachedVeth(t, 1, tc.mode)
			if s.Mode() != tc.want {
				t.Errorf("Mode() = %v, want %v", s.Mode(), tc.want)
			}
			if s.Fallback() != nil {
				t.Errorf("Fallback() = %v", s.Fallback())
			}
			info, err := s.objs.XhttpdSteer.Info()
			if err != nil {
				t.Fatal(err)
			}
			id, _ := info.ID()
			x := linkXDP(t, ns, ifindex)
			if !x.Attached || x.ProgId != uint32(id) || x.AttachMode != netlinkMode[tc.want] {
				t.Errorf("netlink shows %+v, want program %d attached in mode %d", x, id, netlinkMode[tc.want])
			}

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if x := linkXDP(t, ns, ifindex); x.Attached || x.ProgId != 0 {
				t.Errorf("after Close netlink shows %+v", x)
			}
		})
	}
}

// TestAttachFallback: a bridge has no native XDP, so ModeAuto
// ends up in generic mode and says why, and ModeNative fails.
func TestAttachFallback(t *testing.T) {
	ns := testbedtest.NewNamespace(t)
	ifindex := newBridge(t, ns)

	_, err := attachIn(ns, ifindex, ModeNative)
	want := fmt.Sprintf("xdp: attach to ifindex %d in native mode: ", ifindex)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Attach(bridge, native) = %v, want an error starting %q", err, want)
	}

	s, err := attachIn(ns, ifindex, ModeAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Mode() != ModeGeneric {
		t.Errorf("Mode() = %v, want generic", s.Mode())
	}
	if s.Fallback() == nil || !strings.HasPrefix(s.Fallback().Error(), want) {
		t.Errorf("Fallback() = %v, want an error starting %q", s.Fallback(), want)
	}
	t.Logf("fallback: %v", s.Fallback())
	if x := linkXDP(t, ns, ifindex); !x.Attached || x.AttachMode != nl.XDP_ATTACHED_SKB {
		t.Errorf("netlink shows %+v, want attached in generic mode", x)
	}
}

func TestAttachErrors(t *testing.T) {
	ns, ifindex := newVeth(t, 1)

	if _, err := Attach(0, testConfig); err == nil || !strings.Contains(err.Error(), "invalid ifindex 0") {
		t.Errorf("Attach(0) = %v", err)
	}
	if _, err := Attach(ifindex, Config{Ports: testConfig.Ports, Addrs: testConfig.Addrs, Mode: Mode(7)}); err == nil {
		t.Error("Attach with mode 7 succeeded")
	}

	// No such interface: both modes fail, both are reported, on one line.
	_, err := attachIn(ns, 1<<20, ModeAuto)
	t.Logf("Attach(no such interface): %v", err)
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q spans lines", err)
	}
	for _, want := range []string{"xdp: attach to ifindex 1048576 in native mode: ", "; in generic mode: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Attach(no such interface) = %v, want it to mention %q", err, want)
		}
	}
}

// TestAttachBusy: a second program cannot take an interface that has one.
func TestAttachBusy(t *testing.T) {
	ns, ifindex, _ := attachedVeth(t, 1, ModeNative)
	if s2, err := attachIn(ns, ifindex, ModeNative); err == nil {
		s2.Close()
		t.Fatal("second Attach succeeded")
	} else {
		t.Logf("second Attach: %v", err)
	}
}

// TestDetachOnKill: the bpf_link dies with its process, even on SIGKILL,
// so a crashed server leaves the host's traffic alone.
func TestDetachOnKill(t *testing.T) {
	ns, ifindex := newVeth(t, 1)

	// A duplicate: the os.File closes its fd when collected.
	dup, err := unix.Dup(int(ns))
	if err != nil {
		t.Fatal(err)
	}
	nsFile := os.NewFile(uintptr(dup), "netns")
	defer nsFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", childEnv, ifindex))
	cmd.ExtraFiles = []*os.File{nsFile}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "attached ") {
			t.Fatalf("child said %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child did not attach within 10s")
	}
	if x := linkXDP(t, ns, ifindex); !x.Attached {
		t.Fatalf("netlink shows %+v while the child runs", x)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		x := linkXDP(t, ns, ifindex)
		if !x.Attached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("program still attached 5s after SIGKILL: %+v", x)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
