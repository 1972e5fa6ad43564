package stack

import (
	"encoding/binary"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The timestamps on the server's segments (RFC 7323) follow the clock, in
// milliseconds: the SYN-ACK's, a data segment's sent right after it, and
// one sent 50 ms later. gVisor patch 0022 gives a segment's timestamp
// option the clock reading taken for its send time instead of one of its
// own; a segment stamped from anything else (a zero time, a stale one)
// fails here.
func TestTimestampsFollowTheClock(t *testing.T) {
	q := newFakeQueue()
	st, l := serverStack(t, q, Config{MTU: 1500}, "tcp4")
	st.Deliver(tsSegment(header.TCPFlagSyn, 1000, 0, 100, 0))
	synack := serverTCP(q.next(t))
	iss := synack.SequenceNumber()
	v0 := tsValOf(t, synack)
	st.Deliver(tsSegment(header.TCPFlagAck, 1001, iss+1, 101, v0))
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	c.Write([]byte("a"))
	v1 := tsValOf(t, serverTCP(q.next(t)))
	time.Sleep(50 * time.Millisecond)
	st.Deliver(tsSegment(header.TCPFlagAck, 1001, iss+2, 150, v1)) // nothing left unacknowledged for Nagle to wait on
	c.Write([]byte("b"))
	v2 := tsValOf(t, serverTCP(q.next(t)))

	if d := int32(v1 - v0); d < 0 || d > 20 {
		t.Errorf("the first data segment's timestamp is %d ms after the SYN-ACK's (%d, %d); want 0 to 20", d, v0, v1)
	}
	if d := int32(v2 - v1); d < 50 || d > 1000 {
		t.Errorf("a segment sent 50 ms later is stamped %d ms later (%d, %d); want 50 to 1000", d, v1, v2)
	}
}

// tsSegment is a segment from the client to the server's port 80 that
// carries the timestamps tsVal and tsEcr.
func tsSegment(flags header.TCPFlags, seq, ack, tsVal, tsEcr uint32) []byte {
	opts := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(opts[4:], tsVal)
	binary.BigEndian.PutUint32(opts[8:], tsEcr)
	b := make([]byte, header.TCPMinimumSize+len(opts))
	header.TCP(b).Encode(&header.TCPFields{
		SrcPort: 40000, DstPort: 80, SeqNum: seq, AckNum: ack,
		DataOffset: uint8(len(b)), Flags: flags, WindowSize: 65535,
	})
	copy(b[header.TCPMinimumSize:], opts)
	s, d := tcpip.AddrFrom4(clientV4.As4()), tcpip.AddrFrom4(serverV4.As4())
	header.TCP(b).SetChecksum(^checksum.Checksum(b, header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(b)))))
	return ether(clientV4, serverV4, b, header.TCPProtocolNumber)
}

// serverTCP is the TCP segment in an IPv4 frame the server sent.
func serverTCP(frame []byte) header.TCP {
	return header.TCP(header.IPv4(frame[header.EthernetMinimumSize:]).Payload())
}

func tsValOf(t *testing.T, tcp header.TCP) uint32 {
	t.Helper()
	o := header.ParseTCPOptions(tcp.Options())
	if !o.TS {
		t.Fatalf("a segment (flags %v) without timestamps", tcp.Flags())
	}
	return o.TSVal
}
