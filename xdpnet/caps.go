package xdpnet

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// xdpCaps are the capabilities the AF_XDP path needs, the smallest set found by
// starting it as nobody under setpriv with each one left out in turn
// (e2e/user_test.go checks it): AF_XDP sockets need CAP_NET_RAW; attaching
// XDP and binding to a queue CAP_NET_ADMIN; loading the program and its maps
// CAP_BPF; the UMEM, pinned memory beyond RLIMIT_MEMLOCK, CAP_IPC_LOCK. The
// program is written so that it needs no CAP_PERFMON (no packet offsets
// that vary: steer.c, syn_mss).
var xdpCaps = []struct {
	name string
	bit  uint
}{
	{"CAP_NET_ADMIN", 12},
	{"CAP_NET_RAW", 13},
	{"CAP_IPC_LOCK", 14},
	{"CAP_BPF", 39},
}

// missingXDPCaps returns the capabilities of xdpCaps this process lacks
// (from CapEff in /proc/self/status).
func missingXDPCaps() ([]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		eff, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("CapEff %q: %w", hex, err)
		}
		var missing []string
		for _, c := range xdpCaps {
			if eff&(1<<c.bit) == 0 {
				missing = append(missing, c.name)
			}
		}
		return missing, nil
	}
	return nil, fmt.Errorf("no CapEff in /proc/self/status: %v", sc.Err())
}

// checkXDPCaps is one line naming what is missing and how to grant it.
func checkXDPCaps() error {
	missing, err := missingXDPCaps()
	if err != nil {
		return fmt.Errorf("AF_XDP: capabilities: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	var all []string
	for _, c := range xdpCaps {
		all = append(all, c.name)
	}
	return fmt.Errorf("AF_XDP (-stack xdp) needs root, or the capabilities %s (missing: %s; e.g. systemd AmbientCapabilities=%s)",
		strings.Join(all, ", "), strings.Join(missing, ", "), strings.Join(all, " "))
}
