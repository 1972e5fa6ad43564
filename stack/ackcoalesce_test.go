package stack

import (
	"net/netip"
	"slices"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcpFrame builds a frame from the client's port to the server's port 80
// with the given flags, acknowledgement number, options and payload.
func tcpFrame(src, dst netip.Addr, port uint16, flags header.TCPFlags, ack uint32, opts, payload []byte) []byte {
	b := make([]byte, header.TCPMinimumSize+len(opts)+len(payload))
	header.TCP(b).Encode(&header.TCPFields{
		SrcPort: port, DstPort: 80, SeqNum: 1001, AckNum: ack,
		DataOffset: uint8(header.TCPMinimumSize + len(opts)), Flags: flags, WindowSize: 65535,
	})
	copy(b[header.TCPMinimumSize:], opts)
	copy(b[header.TCPMinimumSize+len(opts):], payload)
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	header.TCP(b).SetChecksum(^checksum.Checksum(b, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(b)))))
	return ether(src, dst, b, header.TCPProtocolNumber)
}

var (
	tsOpt   = []byte{1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9}       // NOP, NOP, timestamps
	sackOpt = []byte{1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0} // NOP, NOP, one SACK block
)

func TestParsePureACK(t *testing.T) {
	for _, c := range []struct {
		name  string
		frame []byte
		ok    bool
	}{
		{"IPv4 bare ACK", tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck, 5000, nil, nil), true},
		{"IPv6 bare ACK", tcpFrame(clientV6, serverV6, 40000, header.TCPFlagAck, 5000, nil, nil), true},
		{"with timestamps", tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck, 5000, tsOpt, nil), true},
		{"with a SACK block", tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck, 5000, sackOpt, nil), false},
		{"with data", tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck, 5000, nil, []byte("GET")), false},
		{"ACK and PSH", tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck|header.TCPFlagPsh, 5000, nil, nil), false},
		{"ACK and FIN", tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck|header.TCPFlagFin, 5000, nil, nil), false},
		{"SYN", syn(clientV4, serverV4, 80, false), false},
		{"truncated", tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck, 5000, nil, nil)[:40], false},
		{"empty", nil, false},
	} {
		if got := parsePureACK(c.frame); got.ok != c.ok {
			t.Errorf("%s: ok = %v, want %v", c.name, got.ok, c.ok)
		}
	}
	f := tcpFrame(clientV4, serverV4, 40000, header.TCPFlagAck, 5000, nil, nil)
	f[header.EthernetMinimumSize+6] |= 0x20 // more fragments
	if parsePureACK(f).ok {
		t.Error("a fragment taken for a bare ACK")
	}
}

// Of a batch, the bare ACKs that a later bare ACK of their connection moves
// past are left out; everything else goes through, in order: other
// connections' ACKs, duplicate ACKs, ACKs with SACK blocks, data.
func TestCoalesceACKs(t *testing.T) {
	ack := func(port uint16, n uint32) []byte {
		return tcpFrame(clientV4, serverV4, port, header.TCPFlagAck, n, tsOpt, nil)
	}
	frames := map[string][]byte{
		"a1": ack(40000, 1000), "a2": ack(40000, 3000), "a3": ack(40000, 5000),
		"b1": ack(40001, 1000), "b2": ack(40001, 2000),
		"d1": ack(40002, 7000), "d2": ack(40002, 7000), // a duplicate
		"s1": tcpFrame(clientV4, serverV4, 40003, header.TCPFlagAck, 1000, sackOpt, nil), "s2": ack(40003, 1000),
		"g":  tcpFrame(clientV4, serverV4, 40004, header.TCPFlagAck, 1000, nil, []byte("GET")),
		"g2": ack(40004, 2000),
		"v6": tcpFrame(clientV6, serverV6, 40000, header.TCPFlagAck, 1000, nil, nil), "v6b": tcpFrame(clientV6, serverV6, 40000, header.TCPFlagAck, 9000, nil, nil),
		"w": ack(40005, 0xffff_ff00), "w2": ack(40005, 0x100), // the sequence space wraps
	}
	order := []string{"a1", "b1", "a2", "d1", "s1", "g", "b2", "v6", "d2", "s2", "a3", "g2", "v6b", "w", "w2"}
	want := []string{"d1", "s1", "g", "b2", "d2", "s2", "a3", "g2", "v6b", "w2"}
	var batch [][]byte
	for _, k := range order {
		batch = append(batch, frames[k])
	}
	var got []string
	left := coalesce(batch, func(f []byte) {
		for k, v := range frames {
			if &v[0] == &f[0] {
				got = append(got, k)
			}
		}
	})
	if !slices.Equal(got, want) || left != len(order)-len(want) {
		t.Errorf("delivered %v (%d left out), want %v", got, left, want)
	}
}

// DeliverBatch takes batches longer than it reads ahead in pieces, and
// what it keeps reaches the netstack in order: of 130 ACKs of a connection
// the netstack does not know, in pieces of 64, 64 and 2, the last of each
// piece draws a reset, and the SYN after them its SYN-ACK. It counts as
// taken the four frames the netstack got.
func TestDeliverBatch(t *testing.T) {
	st, q := newTestStack(t, false)
	batch := make([][]byte, 0, 2*maxCoalesce+3)
	for i := range cap(batch) - 1 {
		batch = append(batch, tcpFrame(clientV4, serverV4, 50000, header.TCPFlagAck, uint32(1000+i), nil, nil))
	}
	batch = append(batch, syn(clientV4, serverV4, 80, false))
	if took := st.DeliverBatch(batch); took != 4 {
		t.Errorf("DeliverBatch took %d frames, want 4", took)
	}
	for range 3 {
		if tcp := header.TCP(q.next(t)[header.EthernetMinimumSize+header.IPv4MinimumSize:]); tcp.Flags() != header.TCPFlagRst {
			t.Fatalf("flags %v, want RST", tcp.Flags())
		}
	}
	checkSYNACK(t, q.next(t), serverV4, clientV4)
	if got, want := st.Counters().RxACKsCoalesced, uint64(2*(maxCoalesce-1)+1); got != want {
		t.Errorf("RxACKsCoalesced = %d, want %d", got, want)
	}
}

func BenchmarkCoalesce(b *testing.B) {
	batch := make([][]byte, maxCoalesce)
	for i := range batch {
		batch[i] = tcpFrame(clientV4, serverV4, uint16(40000+i%8), header.TCPFlagAck, uint32(1000*i), tsOpt, nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		coalesce(batch, func([]byte) {})
	}
}
