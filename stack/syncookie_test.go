package stack

import (
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/xhttpd/xhttpd/syncookie"
)

// ack builds the ACK that completes a handshake: sequence number 1001 (the
// client's ISN was 1000), acknowledging cookie.
func ack(src, dst netip.Addr, cookie uint32) []byte {
	return cookieSegment(src, dst, 40000, 1000, cookie, nil, 0)
}

// cookieSegment builds a segment of the connection from the client's port
// whose SYN (ISN isn) the XDP program answered with cookie: the first
// sequence number after the SYN, acknowledging the cookie, with payload and
// flags beside ACK.
func cookieSegment(src, dst netip.Addr, port uint16, isn, cookie uint32, payload []byte, flags header.TCPFlags) []byte {
	tcp := make([]byte, header.TCPMinimumSize+len(payload))
	header.TCP(tcp).Encode(&header.TCPFields{
		SrcPort: port, DstPort: 80, SeqNum: isn + 1, AckNum: cookie + 1, DataOffset: header.TCPMinimumSize,
		Flags: header.TCPFlagAck | flags, WindowSize: 65535,
	})
	copy(tcp[header.TCPMinimumSize:], payload)
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(tcp)))))
	return ether(src, dst, tcp, header.TCPProtocolNumber)
}

// openByCookie delivers what a client sends from port once the XDP program
// has answered its SYN (ISN isn) with a cookie made with key: the ACK and
// then payload, in one batch. It returns the cookie.
func openByCookie(st *Stack, key *syncookie.Key, port uint16, isn uint32, payload []byte) uint32 {
	tu := syncookie.Tuple{Local: serverV4, Remote: clientV4, LocalPort: 80, RemotePort: port}
	cookie := key.Make(tu, isn, syncookie.Period(), syncookie.MSSIndex(1460))
	st.DeliverBatch([][]byte{
		cookieSegment(clientV4, serverV4, port, isn, cookie, nil, 0),
		cookieSegment(clientV4, serverV4, port, isn, cookie, payload, header.TCPFlagPsh),
	})
	return cookie
}

// cookieStack is a server stack that takes the XDP program's SYN cookies
// made with key, listening on port 80 over IPv4. What it sends is dropped.
func cookieStack(t *testing.T, key *syncookie.Key) (*Stack, net.Listener) {
	t.Helper()
	q := newFakeQueue()
	q.forward = func([][]byte) {}
	return serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true, SYNCookies: key}, "tcp4")
}

// readRequest accepts a connection from l and reads want from it.
func readRequest(t *testing.T, l net.Listener, want string) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		done <- result{c, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		l.Close() // ends the Accept
		t.Fatal("no connection accepted within 5 s")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, len(want))
	if _, err := io.ReadFull(r.c, b); err != nil || string(b) != want {
		r.c.Close()
		t.Fatalf("connection from %s read %q, %v; want %q", r.c.RemoteAddr(), b, err, want)
	}
	return r.c
}

// A request right behind the ACK that completes a cookie handshake reaches
// the listener before the connection exists, and the listener hands it on.
// Upstream gVisor kept charging the listener for each segment it handed on,
// and once that charge passed its receive buffer, every request queued to
// it was dropped: a client waited for its retransmission, 200 ms (gVisor
// patch 0011). One P makes the race certain: both segments are queued
// before either is handled.
func TestSYNCookieDataBehindACK(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// The listener's own bound (patch 0013, 16 MiB) would hide the leak
	// for a long time: a bound of 64 KiB shows it within 100 connections.
	defer func(b int64) { tcp.ListenQueueBytes = b }(tcp.ListenQueueBytes)
	tcp.ListenQueueBytes = 64 << 10
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	st, l := cookieStack(t, &key)
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for i := range 500 {
		openByCookie(st, &key, uint16(20000+i), 1000, req)
		readRequest(t, l, string(req)).Close()
	}
}

// A client may reuse the port of a connection the server keeps in
// TIME-WAIT. The kernel's listener takes the new SYN and ends the
// TIME-WAIT; when the XDP program answered that SYN with a cookie, the
// first the netstack sees is the ACK, and it must do the same for a good
// cookie instead of answering with the old connection's ACK for ever.
func TestSYNCookieACKEndsTimeWait(t *testing.T) {
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	q := newFakeQueue()
	st, l := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true, SYNCookies: &key}, "tcp4")
	const port = 40000
	tu := syncookie.Tuple{Local: serverV4, Remote: clientV4, LocalPort: 80, RemotePort: port}

	// The first connection: the server answers and closes first.
	cookie := openByCookie(st, &key, port, 1000, []byte("one"))
	c := readRequest(t, l, "one")
	c.Close()
	var fin header.TCP
	for fin == nil || fin.Flags()&header.TCPFlagFin == 0 {
		fin = header.TCP(payloadOf(q.next(t)))
	}
	// The client acknowledges the FIN with its own: the server is in
	// TIME-WAIT.
	end := cookieSegment(clientV4, serverV4, port, 1000+3, fin.SequenceNumber(), nil, header.TCPFlagFin)
	st.Deliver(end)
	for deadline := time.Now().Add(5 * time.Second); st.TCPCounters().TimeWait != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server is not in TIME-WAIT: %+v", st.TCPCounters())
		}
	}

	// The old connection's ACK and request again (a delayed duplicate, or a
	// replay): their cookie still checks, but they belong to the old
	// connection, and the TIME-WAIT stays.
	opens := st.TCPCounters().PassiveOpens
	st.DeliverBatch([][]byte{
		cookieSegment(clientV4, serverV4, port, 1000, cookie, nil, 0),
		cookieSegment(clientV4, serverV4, port, 1000, cookie, []byte("one"), header.TCPFlagPsh),
	})
	time.Sleep(50 * time.Millisecond)
	if c := st.TCPCounters(); c.TimeWait != 1 || c.PassiveOpens != opens {
		t.Fatalf("after the old connection's segments again: %d in TIME-WAIT, %d connections opened; want 1 and none", c.TimeWait, c.PassiveOpens-opens)
	}

	// A wrong cookie on the same port leaves the TIME-WAIT alone.
	cookie2 := key.Make(tu, 7000, syncookie.Period(), syncookie.MSSIndex(1460))
	st.Deliver(cookieSegment(clientV4, serverV4, port, 7000, cookie2+999, []byte("bad"), header.TCPFlagPsh))
	time.Sleep(50 * time.Millisecond)
	if n := st.TCPCounters().TimeWait; n != 1 {
		t.Fatalf("after a wrong cookie: %d in TIME-WAIT, want 1", n)
	}

	// A new connection from the same port, its SYN answered with a cookie.
	st.DeliverBatch([][]byte{
		cookieSegment(clientV4, serverV4, port, 7000, cookie2, nil, 0),
		cookieSegment(clientV4, serverV4, port, 7000, cookie2, []byte("two"), header.TCPFlagPsh),
	})
	readRequest(t, l, "two").Close()
}

// A handshake whose SYN-ACK the XDP program sent (the netstack never saw the
// SYN) completes when the ACK's cookie checks, and only then.
func TestSYNCookieACKAccepted(t *testing.T) {
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		network        string
		client, server netip.Addr
	}{{"tcp4", clientV4, serverV4}, {"tcp6", clientV6, serverV6}} {
		t.Run(c.network, func(t *testing.T) {
			q := newFakeQueue()
			st, err := New(Config{
				LinkAddr:        serverMAC,
				MTU:             1500,
				Addrs:           []netip.Prefix{netip.PrefixFrom(serverV4, 24), netip.PrefixFrom(serverV6, 64)},
				TrustRXChecksum: true,
				Queues:          []TxQueue{q},
				SYNCookies:      &key,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			l, err := st.Listen(c.network, 80)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				if conn, err := l.Accept(); err == nil {
					accepted <- conn
				}
			}()

			tu := syncookie.Tuple{Local: c.server, Remote: c.client, LocalPort: 80, RemotePort: 40000}
			cookie := key.Make(tu, 1000, syncookie.Period(), syncookie.MSSIndex(1460))

			// A wrong cookie: reset, nothing accepted.
			st.Deliver(ack(c.client, c.server, cookie+12345))
			if rst := header.TCP(payloadOf(q.next(t))); rst.Flags()&header.TCPFlagRst == 0 {
				t.Fatalf("a wrong cookie got flags %v, want RST", rst.Flags())
			}
			select {
			case conn := <-accepted:
				t.Fatalf("a wrong cookie was accepted: %v", conn.RemoteAddr())
			case <-time.After(100 * time.Millisecond):
			}

			st.Deliver(ack(c.client, c.server, cookie))
			select {
			case conn := <-accepted:
				defer conn.Close()
				if got := conn.RemoteAddr().String(); got != netip.AddrPortFrom(c.client, 40000).String() {
					t.Errorf("accepted a connection from %s", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the ACK with a good cookie was not accepted")
			}
		})
	}
}

// payloadOf is the transport payload of an IPv4 or IPv6 Ethernet frame.
func payloadOf(frame []byte) []byte {
	ip := frame[header.EthernetMinimumSize:]
	if header.IPVersion(ip) == header.IPv4Version {
		return header.IPv4(ip).Payload()
	}
	return header.IPv6(ip).Payload()
}

// A burst of connections whose SYNs the XDP program answered: every
// request that reaches the listener before its connection exists is kept
// until the listener gets to it (gVisor patch 0013). Upstream bounded that
// queue by the listener's receive buffer, 128 KiB, about 200 requests;
// the clients of the others waited for their retransmissions.
func TestSYNCookieBurstKeepsRequests(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	st, l := cookieStack(t, &key)
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	const n = 2000
	var batch [][]byte
	for i := range n {
		port := uint16(20000 + i)
		tu := syncookie.Tuple{Local: serverV4, Remote: clientV4, LocalPort: 80, RemotePort: port}
		cookie := key.Make(tu, 1000, syncookie.Period(), syncookie.MSSIndex(1460))
		batch = append(batch,
			cookieSegment(clientV4, serverV4, port, 1000, cookie, nil, 0),
			cookieSegment(clientV4, serverV4, port, 1000, cookie, req, header.TCPFlagPsh))
	}
	st.DeliverBatch(batch)
	for range n {
		readRequest(t, l, string(req)).Close()
	}
}

// A SYN the netstack answered leaves a half-open connection, which waits
// for its ACK while it sends its SYN-ACK again. A SYN flood from the
// client's own address leaves such connections on ports the client may
// use next (the client's RSTs to their SYN-ACKs are lost in the flood, or
// the XDP program drops them: over the budget it drops every RST without
// ACK). When the client's new SYN from that port is answered with a cookie
// by the XDP program, the ACK and the request that follow reach the stale
// half-open connection, not the listener; they must open the new
// connection, as the new SYN would have reset the old one on Linux.
// Without that, the client's request went unanswered until the half-open
// connection gave up, a minute later (TestSYNFlood's rare miss).
func TestSYNCookieACKEndsStaleHalfOpen(t *testing.T) {
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	st, l := cookieStack(t, &key)
	const port = 40000
	st.Deliver(synFrom(clientV4, port)) // ISN 1000: the netstack answers it itself
	for deadline := time.Now().Add(5 * time.Second); st.TCPCounters().SegmentsOut == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no SYN-ACK to the first SYN")
		}
	}
	openByCookie(st, &key, port, 7_000_000, []byte("new")) // an ISN far from the first SYN's window
	readRequest(t, l, "new").Close()
}

// A connection the client has given up may stay open here when the
// client's RST is lost: the XDP program drops RSTs without ACK while it is
// over its SYN budget. When the client's next SYN from the same port is
// answered with a cookie, the ACK and request that follow reach that old
// connection; they must open the new one, whether the old one is still
// established or closing after the server's answer. Before, the old one
// answered them with its own numbers until it gave up (TestSYNFlood's
// rare miss: the ports were those of earlier misses). The old
// connection's own first ACK, replayed, still belongs to the old one.
func TestSYNCookieACKEndsAbandonedConnection(t *testing.T) {
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for i, serverCloses := range []bool{false, true} {
		st, l := cookieStack(t, &key)
		port := uint16(40000 + i)
		cookie := openByCookie(st, &key, port, 1000, []byte("one"))
		old := readRequest(t, l, "one")
		if serverCloses {
			old.Write([]byte("answer"))
			old.Close() // FIN-WAIT-1: the client never acknowledges
		} else {
			defer old.Close()
		}

		opens := st.TCPCounters().PassiveOpens
		st.Deliver(cookieSegment(clientV4, serverV4, port, 1000, cookie, nil, 0))
		time.Sleep(50 * time.Millisecond)
		if n := st.TCPCounters().PassiveOpens - opens; n != 0 {
			t.Fatalf("server closes %v: the old connection's first ACK again opened %d connections", serverCloses, n)
		}

		openByCookie(st, &key, port, 7_000_000, []byte("two")) // an ISN beyond the old connection's
		readRequest(t, l, "two").Close()
		if !serverCloses {
			old.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := old.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
				t.Errorf("the old connection read %d bytes, %v; want it reset", n, err)
			}
		}
	}
}

// cookieSegmentTS is cookieSegment with the timestamp option: tsVal the
// client's clock, tsEcr the TSval of the cookie SYN-ACK it answers.
func cookieSegmentTS(src, dst netip.Addr, port uint16, seq, ack, tsVal, tsEcr uint32, payload []byte, flags header.TCPFlags) []byte {
	const optLen = 12 // NOP, NOP, timestamps
	tcp := make([]byte, header.TCPMinimumSize+optLen+len(payload))
	header.TCP(tcp).Encode(&header.TCPFields{
		SrcPort: port, DstPort: 80, SeqNum: seq, AckNum: ack, DataOffset: header.TCPMinimumSize + optLen,
		Flags: header.TCPFlagAck | flags, WindowSize: 65535,
	})
	header.EncodeNOP(tcp[header.TCPMinimumSize:])
	header.EncodeNOP(tcp[header.TCPMinimumSize+1:])
	header.EncodeTSOption(tsVal, tsEcr, tcp[header.TCPMinimumSize+2:])
	copy(tcp[header.TCPMinimumSize+optLen:], payload)
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(tcp)))))
	return ether(src, dst, tcp, header.TCPProtocolNumber)
}

// A cookie SYN-ACK that echoed a SYN's timestamp keeps, in its TSval, the
// window scale and SACK the SYN offered (gVisor patch 0032): the ACK that
// echoes it opens a connection that scales both windows, sends SACK
// blocks, and goes on from that TSval, which the peer holds as its latest.
// Without timestamps the options are lost, as before.
func TestSYNCookieKeepsOptionsInTimestamp(t *testing.T) {
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	const (
		port     = 40000
		isn      = 1000
		clientTS = 5000
	)
	tu := syncookie.Tuple{Local: serverV4, Remote: clientV4, LocalPort: 80, RemotePort: port}
	for _, c := range []struct {
		name     string
		ws       int // the client's window scale, -1 for none
		sack     bool
		wantWin  bool // the server scales its window
		wantSACK bool
	}{
		{"scale and SACK", 7, true, true, true},
		{"SACK only", -1, true, false, true},
		{"scale only", 2, false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := newFakeQueue()
			st, l := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true, SYNCookies: &key}, "tcp4")
			cookie := key.Make(tu, isn, syncookie.Period(), syncookie.MSSIndex(1460))
			synackTS := tcp.CookieTSVal(123456789, c.ws, c.sack)
			st.DeliverBatch([][]byte{
				cookieSegmentTS(clientV4, serverV4, port, isn+1, cookie+1, clientTS, synackTS, nil, 0),
				cookieSegmentTS(clientV4, serverV4, port, isn+1, cookie+1, clientTS, synackTS, []byte("one"), header.TCPFlagPsh),
			})
			conn := readRequest(t, l, "one")
			defer conn.Close()

			// A segment after a gap of 100 bytes: the server's duplicate
			// ACK carries its timestamps, its scaled window, and a SACK
			// block if SACK was agreed.
			st.Deliver(cookieSegmentTS(clientV4, serverV4, port, isn+1+3+100, cookie+1, clientTS+1, synackTS, []byte("two"), header.TCPFlagPsh))
			// The ACK of "one" may leave before it, its delayed-ACK
			// timer beating the delivery: take the last ACK within 200 ms,
			// or the first with a SACK block.
			var seg header.TCP
			soon, late := time.Now().Add(200*time.Millisecond), time.Now().Add(5*time.Second)
			for seg == nil || time.Now().Before(soon) {
				wait := time.Until(soon)
				if seg == nil {
					wait = time.Until(late)
				}
				select {
				case <-q.sent:
				case <-time.After(max(wait, 0)):
					if seg == nil {
						t.Fatal("no ACK from the server after the gap")
					}
					continue
				}
				q.mu.Lock()
				f := q.frames[0]
				q.frames = q.frames[1:]
				q.mu.Unlock()
				if s := header.TCP(payloadOf(f)); s.AckNumber() == isn+1+3 {
					seg = s
					if len(header.ParseTCPOptions(s.Options()).SACKBlocks) > 0 {
						break
					}
				}
			}
			o := header.ParseTCPOptions(seg.Options())
			// (TS.Recent stays the in-order segment's: RFC 7323, 4.3.)
			if !o.TS || o.TSEcr != clientTS || int32(o.TSVal-synackTS) < 0 || o.TSVal-synackTS > 5000 {
				t.Errorf("server's timestamps %+v; want TSecr %d and TSval from %d on", o, clientTS, synackTS)
			}
			// The server's receive window, about 128 KiB, fills the
			// field unscaled (at most 65,535) and takes about 1,000
			// scaled by the listener's 7.
			if scaled := seg.WindowSize() < 16384; scaled != c.wantWin {
				t.Errorf("window field %d: scaled %v, want %v", seg.WindowSize(), scaled, c.wantWin)
			}
			if got := len(o.SACKBlocks) > 0; got != c.wantSACK {
				t.Errorf("SACK blocks %v; want some: %v", o.SACKBlocks, c.wantSACK)
			}
		})
	}
}

// The TSval bits that carry the options round-trip, never run ahead of
// the clock, and a window scale no SYN can offer is refused.
func TestCookieTSVal(t *testing.T) {
	for _, c := range []struct {
		ts   uint32
		ws   int
		sack bool
	}{{1 << 20, 7, true}, {1<<20 + 63, -1, false}, {5, 14, true}, {0, 0, false}, {100, 20, false}} {
		v := tcp.CookieTSVal(c.ts, c.ws, c.sack)
		if v > c.ts && c.ts >= 64 {
			t.Errorf("CookieTSVal(%d, %d, %v) = %d, ahead of the clock", c.ts, c.ws, c.sack, v)
		}
		if c.ts-v >= 128 && c.ts >= 64 {
			t.Errorf("CookieTSVal(%d, %d, %v) = %d, %d behind", c.ts, c.ws, c.sack, v, c.ts-v)
		}
		ws, sack := int(v&tcp.CookieTSNoWS), v&tcp.CookieTSSACK != 0
		want := min(c.ws, 14)
		if c.ws < 0 {
			want = tcp.CookieTSNoWS
		}
		if ws != want || sack != c.sack {
			t.Errorf("CookieTSVal(%d, %d, %v) keeps scale %d, SACK %v", c.ts, c.ws, c.sack, ws, sack)
		}
	}
}

// synWithOptions is a client's SYN (ISN 1000, from port 40000) with MSS
// 1460, SACK permitted, timestamps (TSval 777) and window scale 7, as
// Linux sends them.
func synWithOptions(src, dst netip.Addr) []byte {
	const optLen = 20
	tcp := make([]byte, header.TCPMinimumSize+optLen)
	header.TCP(tcp).Encode(&header.TCPFields{
		SrcPort: 40000, DstPort: 80, SeqNum: 1000, DataOffset: header.TCPMinimumSize + optLen,
		Flags: header.TCPFlagSyn, WindowSize: 65535,
	})
	o := tcp[header.TCPMinimumSize:]
	n := header.EncodeMSSOption(1460, o)
	n += header.EncodeSACKPermittedOption(o[n:])
	n += header.EncodeTSOption(777, 0, o[n:])
	n += header.EncodeNOP(o[n:])
	header.EncodeWSOption(7, o[n:])
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	header.TCP(tcp).SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(tcp)))))
	return ether(src, dst, tcp, header.TCPProtocolNumber)
}

// The netstack's own cookie SYN-ACK (its listener answers with cookies
// when its SYN queue is full, or always, as here) offers the window scale
// CookieWndScale says and SACK, and keeps the client's in its TSval, as
// the XDP program's do.
func TestListenerCookieSYNACKOffersOptions(t *testing.T) {
	q := newFakeQueue()
	st, _ := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true}, "tcp4")
	always := tcpip.TCPAlwaysUseSynCookies(true)
	if err := st.s.SetTransportProtocolOption(tcp.ProtocolNumber, &always); err != nil {
		t.Fatal(err)
	}
	st.Deliver(synWithOptions(clientV4, serverV4))
	seg := header.TCP(payloadOf(q.next(t)))
	if seg.Flags() != header.TCPFlagSyn|header.TCPFlagAck {
		t.Fatalf("answer flags %v, want SYN-ACK", seg.Flags())
	}
	o := header.ParseSynOptions(seg.Options(), true)
	if o.WS != CookieWndScale() || !o.SACKPermitted || !o.TS || o.TSEcr != 777 {
		t.Fatalf("cookie SYN-ACK options %+v; want window scale %d, SACK permitted, TSecr 777", o, CookieWndScale())
	}
	if ws, sack := o.TSVal&tcp.CookieTSNoWS, o.TSVal&tcp.CookieTSSACK != 0; ws != 7 || !sack {
		t.Errorf("TSval %#x keeps scale %d and SACK %v; want 7 and true", o.TSVal, ws, sack)
	}
}

// A SYN the netstack answered, retransmitted and answered again by the XDP
// program with a cookie: the client takes whichever SYN-ACK comes first,
// and when that is the cookie's, its ACK reaches the netstack's half-open
// connection, which takes the cookie's sequence number (upstream gVisor)
// and goes on from the cookie SYN-ACK's TSval (gVisor patch 0032), which
// the client holds as the latest and would otherwise drop the server's
// segments behind (PAWS).
func TestCookieACKToHalfOpenKeepsTimestamps(t *testing.T) {
	key, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	q := newFakeQueue()
	st, l := serverStack(t, q, Config{MTU: 1500, TrustRXChecksum: true, SYNCookies: &key}, "tcp4")
	st.Deliver(synWithOptions(clientV4, serverV4))
	if f := header.TCP(payloadOf(q.next(t))).Flags(); f != header.TCPFlagSyn|header.TCPFlagAck {
		t.Fatalf("the netstack answered the SYN with %v, want a SYN-ACK", f)
	}
	const port, isn = 40000, 1000
	tu := syncookie.Tuple{Local: serverV4, Remote: clientV4, LocalPort: 80, RemotePort: port}
	cookie := key.Make(tu, isn, syncookie.Period(), syncookie.MSSIndex(1460))
	// The cookie SYN-ACK's TSval, far from the netstack's own clock.
	synackTS := tcp.CookieTSVal(0x9000_0000, 7, true)
	st.DeliverBatch([][]byte{
		cookieSegmentTS(clientV4, serverV4, port, isn+1, cookie+1, 778, synackTS, nil, 0),
		cookieSegmentTS(clientV4, serverV4, port, isn+1, cookie+1, 778, synackTS, []byte("one"), header.TCPFlagPsh),
	})
	conn := readRequest(t, l, "one")
	defer conn.Close()
	if _, err := conn.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		seg := header.TCP(payloadOf(q.next(t)))
		if len(seg.Payload()) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no data from the server")
			}
			continue
		}
		if seg.SequenceNumber() != cookie+1 {
			t.Errorf("data at sequence number %d, want the cookie's %d", seg.SequenceNumber(), cookie+1)
		}
		if o := header.ParseTCPOptions(seg.Options()); !o.TS || int32(o.TSVal-synackTS) < 0 || o.TSVal-synackTS > 5000 {
			t.Errorf("server's timestamps %+v; want TSval from %d on", o, synackTS)
		}
		break
	}
}
