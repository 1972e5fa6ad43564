package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// TimeWaits counts the TCP sockets in TIME-WAIT, IPv4 and IPv6, in the
// network namespace of the calling thread, whose local and remote ports
// are local and remote (0: any). After a Close run against a server's
// port, TimeWaits(0, port) counts those the client side holds, and in the
// server's namespace TimeWaits(port, 0) those of a kernel-stack server.
func TimeWaits(local, remote int) (int, error) {
	n := 0
	for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, fmt.Errorf("loadgen: %w", err)
		}
		k, err := countTimeWait(b, local, remote)
		if err != nil {
			return 0, fmt.Errorf("loadgen: %s: %w", f, err)
		}
		n += k
	}
	return n, nil
}

// tcpTimeWait is TIME_WAIT in /proc/net/tcp's st column.
const tcpTimeWait = "06"

// countTimeWait reads a /proc/net/tcp table:
//
//	sl  local_address rem_address   st ...
//	 0: 0100007F:0050 0100007F:9C40 06 ...
func countTimeWait(table []byte, local, remote int) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // the header
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		lp, err1 := port(f[1])
		rp, err2 := port(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return 0, err
		}
		if f[3] == tcpTimeWait && (local == 0 || lp == local) && (remote == 0 || rp == remote) {
			n++
		}
	}
	return n, sc.Err()
}

// port reads the port of an address of /proc/net/tcp: hex address, colon,
// hex port.
func port(addr string) (int, error) {
	_, hex, ok := strings.Cut(addr, ":")
	if !ok {
		return 0, fmt.Errorf("address %q", addr)
	}
	p, err := strconv.ParseUint(hex, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("port in %q", addr)
	}
	return int(p), nil
}
