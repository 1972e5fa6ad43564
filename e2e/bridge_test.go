package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// Two clients behind a bridge whose links all have MTU 9000, more than an
// AF_XDP frame holds: xhttpd serves with the netstack's MSS clamped to a
// frame, and 4 MiB downloads over IPv4 and IPv6 from both clients at once
// arrive whole (SHA-256 of each against the file's). ICMP stays the
// kernel's, at the full MTU: an 8,000-byte echo, sent unfragmented (DF),
// comes back whole from each client over both families.
func TestBridgeJumboMTU(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Bridge: true, Clients: 2, MTU: 9000})
	s := newSite(t)
	s.add(t, "/4m.bin", random(t, 4<<20))
	srv := startServer(t, tb, s.dir)
	if !strings.Contains(srv.Output(), "netstack_mtu=") {
		t.Errorf("no word of the clamped MTU at start-up:\n%s", srv.Output())
	}
	want := sha256.Sum256(s.files["/4m.bin"])

	var wg sync.WaitGroup
	for i, c := range tb.Clients {
		for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
			wg.Go(func() {
				url := "http://" + host + "/4m.bin"
				got, took, err := curlSum(c, url, t.TempDir())
				switch {
				case err != nil:
					t.Errorf("%s from %s: %v", url, c.NS, err)
				case got != want:
					t.Errorf("%s from %s: SHA-256 %x, want %x", url, c.NS, got, want)
				default:
					t.Logf("%s from client %d over MTU 9000: %v", url, i, took.Round(time.Millisecond))
				}
			})
		}
	}
	wg.Wait()

	for _, c := range tb.Clients {
		for _, dst := range []netip.Addr{tb.ServerV4, tb.ServerV6} {
			if err := echo(c, dst, 8000); err != nil {
				t.Errorf("8000-byte echo from %s to %v: %v", c.NS, dst, err)
			}
		}
	}
}

// curlSum downloads url with curl in c's namespace and returns the SHA-256
// of what it got. It also checks that the connection left from c's own
// address.
func curlSum(c *testbed.Client, url, dir string) ([32]byte, time.Duration, error) {
	dst := filepath.Join(dir, "got")
	ctx, cancel := context.WithTimeout(context.Background(), 2*downloadBound)
	defer cancel()
	start := time.Now()
	out, err := c.Cmd(ctx, "curl", "-sS", "-g", "--fail", "--max-time", fmt.Sprint(downloadBound.Seconds()),
		"-o", dst, "-w", "%{local_ip}", url).CombinedOutput()
	if err != nil {
		return [32]byte{}, 0, fmt.Errorf("curl: %v: %s", err, bytes.TrimSpace(out))
	}
	took := time.Since(start)
	if local := string(out); local != c.V4.String() && local != c.V6.String() {
		return [32]byte{}, 0, fmt.Errorf("connected from %s, not from the client's addresses", local)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		return [32]byte{}, 0, err
	}
	return sha256.Sum256(got), took, nil
}

// echo sends one ICMP or ICMPv6 echo request with size bytes of data from
// c to dst, with fragmentation forbidden, and waits up to 2 s for its
// reply, which must carry the same data. Go's raw IP sockets, not ping: a
// fresh machine has no ping.
func echo(c *testbed.Client, dst netip.Addr, size int) error {
	network, src, typ, reply, level, opt, do := "ip4:icmp", c.V4, byte(8), byte(0), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO
	if dst.Is6() {
		network, src, typ, reply, level, opt, do = "ip6:ipv6-icmp", c.V6, 128, 129, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO
	}
	var conn *net.IPConn
	if err := c.In(func() error {
		pc, err := net.ListenPacket(network, src.String())
		if err == nil {
			conn = pc.(*net.IPConn)
		}
		return err
	}); err != nil {
		return err
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, do) }); err != nil || serr != nil {
		return fmt.Errorf("forbid fragmentation: %v %v", err, serr)
	}

	id := uint16(os.Getpid())
	msg := make([]byte, 8+size)
	msg[0] = typ
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], 1)
	for i := range size {
		msg[8+i] = byte(i)
	}
	if dst.Is4() {
		// The kernel sums ICMPv6 for raw sockets itself, not ICMP.
		var s uint32
		for i := 0; i+1 < len(msg); i += 2 {
			s += uint32(msg[i])<<8 | uint32(msg[i+1])
		}
		s = s&0xffff + s>>16
		s = s&0xffff + s>>16
		binary.BigEndian.PutUint16(msg[2:], ^uint16(s))
	}
	if _, err := conn.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16<<10)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no reply: %w", err)
		}
		b := buf[:n]
		if from.(*net.IPAddr).IP.Equal(dst.AsSlice()) && n >= 8 && b[0] == reply &&
			binary.BigEndian.Uint16(b[4:]) == id && binary.BigEndian.Uint16(b[6:]) == 1 {
			if !bytes.Equal(b[8:], msg[8:]) {
				return fmt.Errorf("reply with %d bytes of data, differing from the %d sent", n-8, size)
			}
			return nil
		}
	}
}

// forgeFor is how long the forger of TestBridgeForgedNeighbour sends.
const forgeFor = 3 * time.Second

// A host on the bridge forges SYNs to the served port with its neighbour's
// source address (and its own MAC), over IPv4 and IPv6, while the
// neighbour downloads. The netstack answers each forged SYN, and the
// answers go to the neighbour whose address it is (its kernel resets
// them), not to the forger: the neighbour's downloads all complete with
// the right bytes, the forger's interface sees no TCP frame from the
// server, the victim's sees the SYN-ACKs. With the link endpoint learning
// a MAC from any steered frame, as it once did (neighbourLock 0), the
// forger got 11,881 frames in 3 s and the victim's downloads timed out.
func TestBridgeForgedNeighbour(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{Bridge: true, Clients: 2})
	victim, forger := tb.Clients[0], tb.Clients[1]
	s := newSite(t)
	startServer(t, tb, s.dir, "-admin", adminAddr)
	fromServer := func(f []byte) bool { return isTCPFrom(f, tb.ServerV4, tb.ServerV6, 0) }
	synACKs := func(f []byte) bool { return isTCPFrom(f, tb.ServerV4, tb.ServerV6, 0x12) }
	atForger, err := capture(forger, fromServer)
	if err != nil {
		t.Fatal(err)
	}
	atVictim, err := capture(victim, synACKs)
	if err != nil {
		t.Fatal(err)
	}

	// The victim downloads, over both families, until told to stop; its
	// first download is done before the forging starts, so the server knows
	// its MAC.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	first := make(chan struct{}, 2)
	var downloads atomic.Int64
	var wg sync.WaitGroup
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		wg.Go(func() {
			client := victim.HTTP()
			defer client.CloseIdleConnections()
			for i := 0; ; i++ {
				if err := fetch(ctx, client, "http://"+host+"/1m.bin", s.files["/1m.bin"]); err != nil {
					t.Errorf("victim, download %d from %s: %v", i, host, err)
					first <- struct{}{}
					return
				}
				downloads.Add(1)
				if i == 0 {
					first <- struct{}{}
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}
	<-first
	<-first

	fctx, fcancel := context.WithTimeout(ctx, forgeFor)
	defer fcancel()
	var forged atomic.Uint64
	var fwg sync.WaitGroup
	for _, f := range []testbed.FloodOptions{
		{Dst: tb.ServerV4, Src: victim.V4},
		{Dst: tb.ServerV6, Src: victim.V6},
	} {
		f.Port, f.From, f.Rate = 80, forger, 500
		fwg.Go(func() {
			n, err := tb.Flood(fctx, f)
			forged.Add(n)
			if err != nil {
				t.Errorf("forging %v from %s: %v", f.Src, forger.NS, err)
			}
		})
	}
	fwg.Wait()
	time.Sleep(500 * time.Millisecond) // the victim goes on downloading after the forging
	close(stop)
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // the last answers land
	nForger, err := atForger()
	if err != nil {
		t.Fatal(err)
	}
	nVictim, err := atVictim()
	if err != nil {
		t.Fatal(err)
	}
	noNeighbour := metric(t, tb, adminAddr, "xhttpd_link_dropped_frames_total", "reason", "tx_no_neighbour")
	t.Logf("forged %d SYNs from %s as %v and %v in %v; the victim downloaded 1 MiB %d times; "+
		"SYN-ACKs at the victim %d, TCP frames from the server at the forger %d",
		forged.Load(), forger.NS, victim.V4, victim.V6, forgeFor, downloads.Load(), nVictim, nForger)
	if forged.Load() < 1000 {
		t.Errorf("forged only %d SYNs", forged.Load())
	}
	if nForger != 0 {
		t.Errorf("the forger received %d TCP frames from the server", nForger)
	}
	// The forged SYNs reached the netstack and were answered, to the
	// victim: the test proves something only if they were.
	if nVictim < int(forged.Load())*9/10 {
		t.Errorf("the victim saw %d SYN-ACKs for %d forged SYNs", nVictim, forged.Load())
	}
	if noNeighbour != 0 {
		t.Errorf("%.0f frames dropped for want of a neighbour", noNeighbour)
	}
}

// isTCPFrom says whether an Ethernet frame is TCP over IPv4 or IPv6 from
// v4 or v6 with all of flags set (0: any TCP).
func isTCPFrom(f []byte, v4, v6 netip.Addr, flags byte) bool {
	if len(f) < 14 {
		return false
	}
	var tcp []byte
	switch binary.BigEndian.Uint16(f[12:]) {
	case unix.ETH_P_IP:
		ip := f[14:]
		if len(ip) < 20 || ip[9] != unix.IPPROTO_TCP || netip.AddrFrom4([4]byte(ip[12:16])) != v4 {
			return false
		}
		tcp = ip[int(ip[0]&0xf)*4:]
	case unix.ETH_P_IPV6:
		ip := f[14:]
		if len(ip) < 40 || ip[6] != unix.IPPROTO_TCP || netip.AddrFrom16([16]byte(ip[8:24])) != v6 {
			return false
		}
		tcp = ip[40:]
	default:
		return false
	}
	return len(tcp) >= 14 && tcp[13]&flags == flags
}

// capture counts the frames c's interface receives for which match is
// true, on an AF_PACKET socket, until the returned function is called; it
// returns the count, and an error if the kernel dropped frames before the
// socket read them (then the count proves nothing).
func capture(c *testbed.Client, match func([]byte) bool) (func() (int, error), error) {
	fd := -1
	err := c.In(func() error {
		ifi, err := net.InterfaceByName(c.If)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", c.If, err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50_000})
	var (
		n       int
		readErr error
		done    = make(chan struct{})
		stopped atomic.Bool
	)
	go func() {
		defer close(done)
		buf := make([]byte, 128) // headers are enough; the rest is cut
		for !stopped.Load() {
			m, from, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				readErr = err
				return
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if match(buf[:min(m, len(buf))]) {
				n++
			}
		}
	}()
	return func() (int, error) {
		stopped.Store(true)
		<-done
		defer unix.Close(fd)
		if readErr != nil {
			return n, fmt.Errorf("capture on %s: %w", c.If, readErr)
		}
		st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err != nil {
			return n, fmt.Errorf("capture on %s: statistics: %w", c.If, err)
		}
		if st.Drops > 0 {
			return n, fmt.Errorf("capture on %s dropped %d of %d frames", c.If, st.Drops, st.Packets)
		}
		return n, nil
	}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
