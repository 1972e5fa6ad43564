package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
)

// kernelBusy is the experiment's name for the kernel-stack httpd with the
// kernel's own busy polling: Linux's answer to the question xhttpd's
// modes ask.
const kernelBusy = "kernel-busy"

// How kernel-busy polls. The epoll instance busy-polls the veth's NAPI
// for busyPollUsecs before it sleeps, taking up to busyPollBudget packets
// a poll, and prefers busy polling to the softirq; the NAPI defers its
// "interrupt" (veth's napi_schedule from the sender) for deferHardIrqs
// empty polls, with a watchdog every groFlushTimeout meanwhile, so that
// while the server polls, the softirq stays out of its way.
const (
	busyPollUsecs   = 50
	busyPollBudget  = 64 // NAPI_POLL_WEIGHT: more needs CAP_NET_ADMIN
	deferHardIrqs   = 2
	groFlushTimeout = 20_000 // ns
)

// kernelBusyWhy is the report's paragraph on what kernel-busy sets.
const kernelBusyWhy = "kernel-busy is the kernel-stack httpd (`xhttpd -stack kernel`) with the kernel's busy polling. veth has a NAPI instance only with GRO on (or an XDP program attached), and hands a TCP segment to it only when the sending end does not do TSO (`veth_skb_is_eligible_for_gro`); otherwise its frames go through the per-CPU backlog, which has no NAPI ID, and nothing can be busy-polled. So for this server only, the server's veth end gets GRO on and the client's TSO off (`ethtool -K`), the server end's `napi_defer_hard_irqs` and `gro_flush_timeout` are set (2 and 20 µs), and the server's epoll instance (Go's netpoller, reached with pidfd_getfd) gets `EPIOCSPARAMS`: busy-poll 50 µs before sleeping, a budget of 64, and preferred busy polling (SO_PREFER_BUSY_POLL's equivalent for epoll). No system-wide sysctl is changed (`net.core.busy_poll` and `busy_read` are global, not per namespace, and would reach every socket of the machine); everything is restored when the server stops, also on failure. Each point records the packets busy polling took (TcpExt BusyPollRxPackets in the server's namespace); `irq_suspend_timeout` (Linux 6.13's IRQ suspension) is not set: it needs the netdev netlink family, which the testbed does not speak."

// prepareBusyPoll puts the testbed's veth pair in the state the kernel's
// busy polling needs (see kernelBusyWhy) and returns what undoes it, to
// be called also when preparing fails half-way.
func prepareBusyPoll(ctx context.Context, tb *testbed.Testbed) (restore func() error, err error) {
	var undo []func() error
	restore = func() error {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		undo = nil
		return errors.Join(errs...)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		return restore, fmt.Errorf("ethtool is missing (apt-get install ethtool): veth's GRO and TSO cannot be set for busy polling")
	}
	feature := func(cmd func(context.Context, string, ...string) *exec.Cmd, iface, name, key string, on bool) error {
		out, err := cmd(ctx, "ethtool", "-k", iface).Output()
		if err != nil {
			return fmt.Errorf("ethtool -k %s: %w", iface, err)
		}
		was, err := ethtoolFeature(out, key)
		if err != nil {
			return fmt.Errorf("ethtool -k %s: %w", iface, err)
		}
		if was == on {
			return nil
		}
		set := func(v bool) error {
			if out, err := cmd(context.Background(), "ethtool", "-K", iface, name, onOff(v)).CombinedOutput(); err != nil {
				return fmt.Errorf("ethtool -K %s %s %s: %w: %s", iface, name, onOff(v), err, bytes.TrimSpace(out))
			}
			return nil
		}
		if err := set(on); err != nil {
			return err
		}
		undo = append(undo, func() error { return set(was) })
		return nil
	}
	if err := feature(tb.ServerCmd, tb.ServerIf, "gro", "generic-receive-offload", true); err != nil {
		return restore, err
	}
	if err := feature(tb.ClientCmd, tb.ClientIf, "tso", "tcp-segmentation-offload", false); err != nil {
		return restore, err
	}
	for _, k := range []struct {
		file  string
		value int
	}{{"napi_defer_hard_irqs", deferHardIrqs}, {"gro_flush_timeout", groFlushTimeout}} {
		// The server's sysfs: `ip netns exec` mounts the namespace's.
		path := "/sys/class/net/" + tb.ServerIf + "/" + k.file
		out, err := tb.ServerCmd(ctx, "cat", path).Output()
		if err != nil {
			return restore, fmt.Errorf("read %s: %w", path, err)
		}
		was := strings.TrimSpace(string(out))
		write := func(v string) error { return writeSysfs(tb.ServerCmd, path, v) }
		if _, err := strconv.Atoi(was); err != nil {
			return restore, fmt.Errorf("%s holds %q", path, was)
		}
		if err := write(strconv.Itoa(k.value)); err != nil {
			return restore, err
		}
		undo = append(undo, func() error { return write(was) })
	}
	return restore, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// ethtoolFeature reads one feature from `ethtool -k`'s listing:
//
//	generic-receive-offload: on
//	tcp-segmentation-offload: off [fixed]
func ethtoolFeature(out []byte, key string) (bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || k != key {
			continue
		}
		switch f := strings.Fields(v); {
		case len(f) > 0 && f[0] == "on":
			return true, nil
		case len(f) > 0 && f[0] == "off":
			return false, nil
		}
		return false, fmt.Errorf("%s: %q", key, v)
	}
	return false, fmt.Errorf("no %s", key)
}

// epollParams is the kernel's struct epoll_params (EPIOCSPARAMS).
type epollParams struct {
	usecs  uint32
	budget uint16
	prefer uint8
	_      uint8
}

// enableEpollBusyPoll sets busy polling on every epoll instance of process
// pid (Go's netpoller has one), through a copy of its descriptor taken
// with pidfd_getfd. It returns how many it set.
func enableEpollBusyPoll(pid int) (int, error) {
	fds, err := epollFDs(pid)
	if err != nil {
		return 0, err
	}
	if len(fds) == 0 {
		return 0, fmt.Errorf("pid %d has no epoll instance", pid)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	for _, target := range fds {
		fd, err := unix.PidfdGetfd(pidfd, target, 0)
		if err != nil {
			return 0, fmt.Errorf("pidfd_getfd %d of pid %d: %w", target, pid, err)
		}
		p := epollParams{usecs: busyPollUsecs, budget: busyPollBudget, prefer: 1}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.EPIOCSPARAMS, uintptr(unsafe.Pointer(&p)))
		unix.Close(fd)
		if errno != 0 {
			return 0, fmt.Errorf("EPIOCSPARAMS on fd %d of pid %d: %w", target, pid, errno)
		}
	}
	return len(fds), nil
}

// epollFDs lists pid's descriptors that are epoll instances.
func epollFDs(pid int) ([]int, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == "anon_inode:[eventpoll]" {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				fds = append(fds, fd)
			}
		}
	}
	return fds, nil
}

// busyPollRx reads TcpExt BusyPollRxPackets, the packets busy polling has
// taken, in the server's namespace.
func busyPollRx(tb *testbed.Testbed) (int64, error) {
	var n int64
	err := tb.InServer(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/netstat")
		if err != nil {
			return err
		}
		n, err = netstatValue(b, "TcpExt", "BusyPollRxPackets")
		return err
	})
	return n, err
}

// netstatValue reads one counter of /proc/net/netstat, whose groups come
// as two lines: names, then values.
//
//	TcpExt: SyncookiesSent ... BusyPollRxPackets ...
//	TcpExt: 0 ... 42 ...
func netstatValue(b []byte, group, name string) (int64, error) {
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != group+":" || len(values) != len(names) || values[0] != group+":" {
			continue
		}
		for j, n := range names {
			if n == name {
				return strconv.ParseInt(values[j], 10, 64)
			}
		}
		return 0, fmt.Errorf("netstat: no %s in %s", name, group)
	}
	return 0, fmt.Errorf("netstat: no %s group", group)
}

// writeSysfs writes v to the sysfs file path of a namespace, through cmd
// (tb.ServerCmd or tb.ClientCmd): `ip netns exec` mounts the namespace's
// sysfs, where a thread that only entered the namespace would see the
// host's.
func writeSysfs(cmd func(context.Context, string, ...string) *exec.Cmd, path, v string) error {
	if out, err := cmd(context.Background(), "sh", "-c", "echo "+v+" > "+path).CombinedOutput(); err != nil {
		return fmt.Errorf("write %s to %s: %w: %s", v, path, err, bytes.TrimSpace(out))
	}
	return nil
}
