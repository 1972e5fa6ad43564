package stack

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// gsoSizes is a GSOSender that records the payload size of each segment.
type gsoSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (g *gsoSizes) SendGSO(v6 bool, hdrLen, mss, csumStart, csumOffset int, bufs [][]byte, owner interface{ DecRef() }) error {
	defer owner.DecRef()
	n := -hdrLen
	for _, b := range bufs {
		n += len(b)
	}
	g.mu.Lock()
	g.sizes = append(g.sizes, n)
	g.mu.Unlock()
	return nil
}

func (g *gsoSizes) get() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

// ackFrame builds a frame with a bare ACK from the client's port 40000.
func ackFrame(src, dst netip.Addr, seq, ack uint32) []byte {
	b := make([]byte, header.TCPMinimumSize)
	header.TCP(b).Encode(&header.TCPFields{
		SrcPort: 40000, DstPort: 80, SeqNum: seq, AckNum: ack, DataOffset: header.TCPMinimumSize,
		Flags: header.TCPFlagAck, WindowSize: 65535,
	})
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	header.TCP(b).SetChecksum(^checksum.Checksum(b, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(b)))))
	return ether(src, dst, b, header.TCPProtocolNumber)
}

// ACKs that arrive together open the window once: the data they let out
// leaves in one GSO segment after the last of them, not a segment or two
// after each (gVisor patch 0009). Five ACKs, each for two of the first
// flight's ten segments, are queued while the test holds the endpoint's
// lock, as they queue while a writer or a timer holds it.
func TestACKBatchSendsOnce(t *testing.T) {
	q := newFakeQueue()
	g := &gsoSizes{}
	st, l := serverStack(t, q, Config{MTU: 1500, GSO: []GSOSender{g}}, "tcp4")

	st.Deliver(syn(clientV4, serverV4, 80, false)) // no MSS option: the MSS is 536
	synack := q.next(t)
	iss := header.TCP(synack[header.EthernetMinimumSize+header.IPv4MinimumSize:]).SequenceNumber()
	st.Deliver(ackFrame(clientV4, serverV4, 1001, iss+1))
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go conn.Write(make([]byte, 64<<10))

	const mss, initialWindow = 536, 10
	waitGSO(t, g, 1)
	if got := g.get(); got[0] != initialWindow*mss {
		t.Fatalf("first flight: GSO segments of %v bytes, want one of %d", got, initialWindow*mss)
	}

	var ep *tcp.Endpoint
	for _, e := range st.s.RegisteredEndpoints() {
		if e, ok := e.(*tcp.Endpoint); ok && e.EndpointState() == tcp.StateEstablished {
			ep = e
		}
	}
	if ep == nil {
		t.Fatal("no established endpoint")
	}
	ep.StopWork()
	for i := uint32(1); i <= 5; i++ {
		st.Deliver(ackFrame(clientV4, serverV4, 1001, iss+1+2*mss*i))
	}
	ep.ResumeWork()

	waitGSO(t, g, 2)
	time.Sleep(100 * time.Millisecond) // for segments that should not come
	// Slow start: each ACK for two segments lets out four, twenty in all.
	if got := g.get()[1:]; len(got) != 1 || got[0] != 2*initialWindow*mss {
		t.Errorf("after five ACKs at once: GSO segments of %v bytes, want one of %d", got, 2*initialWindow*mss)
	}
}

func waitGSO(t *testing.T, g *gsoSizes, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(g.get()) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d GSO segments within 5s, want %d", len(g.get()), n)
		}
	}
}
