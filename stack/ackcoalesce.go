package stack

import (
	"encoding/binary"
	"time"
)

// A client that acknowledges every second segment of a download sends the
// server an ACK per two frames, and each costs the netstack a trip through
// IP, the TCP demultiplexer, a segment and the sender's ACK processing:
// with the loss programs on the client end (NAPI and GRO there, as behind
// a NIC) one 5 MiB download drew about 1,900 of them, and the server's
// rate fell as their number rose. When a batch from the rx ring holds
// several pure ACKs of one connection, all but the last of them say
// nothing the last does not: TCP's ACKs are cumulative, the sender counts
// the data acknowledged, not the ACKs (gVisor's congestion control counts
// packets by what left the flight), and the last carries the newest
// window and timestamp. So DeliverBatch hands the netstack only the last,
// as a NIC's LRO or Linux's GRO would merge the data segments before them.
//
// Only ACKs that are bare and move forward are dropped: no payload, no
// flag but ACK, no option but timestamps and padding (a SACK block, which
// RACK and the scoreboard read one by one, keeps its ACK), and only for a
// later one of the same connection that acknowledges more. Duplicate ACKs,
// which carry the news of a loss, always go through.

// pureACK is a frame's TCP connection and acknowledgement number, when the
// frame is a bare ACK that a later one may stand for.
type pureACK struct {
	ok   bool
	flow [38]byte // IP version, addresses and ports
	ack  uint32
}

// parsePureACK reads an Ethernet frame as DeliverBatch needs it. It checks
// only what it reads; malformed frames are not pure ACKs and go to deliver.
func parsePureACK(frame []byte) (p pureACK) {
	const eth = 14
	if len(frame) < eth+20 {
		return p
	}
	var tcp []byte
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		ip := frame[eth:]
		ihl := int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 6 || total > len(ip) || total < ihl+20 ||
			binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 { // a fragment
			return p
		}
		tcp = ip[ihl:total]
		p.flow[0] = 4
		copy(p.flow[1:9], ip[12:20])
	case 0x86dd:
		ip := frame[eth:]
		if len(ip) < 40 || ip[6] != 6 { // next header TCP, no extension headers
			return p
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		if 40+plen > len(ip) || plen < 20 {
			return p
		}
		tcp = ip[40 : 40+plen]
		p.flow[0] = 6
		copy(p.flow[1:33], ip[8:40])
	default:
		return p
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off != len(tcp) || tcp[13] != 0x10 { // payload, or a flag but ACK
		return p
	}
	for o := tcp[20:off]; len(o) > 0; {
		switch o[0] {
		case 0: // end of options
			o = nil
		case 1: // NOP
			o = o[1:]
		case 8: // timestamps
			if len(o) < 10 || o[1] != 10 {
				return p
			}
			o = o[10:]
		default: // SACK blocks and anything else
			return p
		}
	}
	copy(p.flow[33:37], tcp[0:4])
	p.ack = binary.BigEndian.Uint32(tcp[8:12])
	p.ok = true
	return p
}

// maxCoalesce is the most frames coalesce reads ahead: a batch is a
// loop's round, at most its budget (64 by default); a bigger one is taken
// in pieces of this many.
const maxCoalesce = 64

// DeliverBatch hands a batch of received frames to the netstack in order,
// leaving out each bare ACK that a later bare ACK of the same connection in
// the batch moves past (above). Like Deliver it copies what it keeps. It
// returns how many frames the netstack took: not the ACKs left out, nor
// malformed frames or strays (stray.go), which are no work for it.
func (st *Stack) DeliverBatch(frames [][]byte) (took int) {
	now := time.Now().UnixNano()
	deliver := func(f []byte) {
		if st.ep.deliver(f, now) {
			took++
		}
	}
	for len(frames) > 0 {
		n := min(len(frames), maxCoalesce)
		st.ep.rxACKsCoalesced.Add(uint64(coalesce(frames[:n], deliver)))
		frames = frames[n:]
	}
	return took
}

// coalesce calls deliver with each of frames (at most maxCoalesce) but the
// bare ACKs that a later one stands for, in order, and returns how many it
// left out.
func coalesce(frames [][]byte, deliver func([]byte)) (left int) {
	var acks [maxCoalesce]pureACK
	n := 0
	for i, f := range frames {
		if acks[i] = parsePureACK(f); acks[i].ok {
			n++
		}
	}
	for i, f := range frames {
		if n > 1 && acks[i].ok && superseded(acks[i], acks[i+1:len(frames)]) {
			left++
			continue
		}
		deliver(f)
	}
	return left
}

// superseded reports whether a later bare ACK of a's connection
// acknowledges more than a.
func superseded(a pureACK, later []pureACK) bool {
	for _, b := range later {
		if b.ok && b.flow == a.flow && int32(b.ack-a.ack) > 0 {
			return true
		}
	}
	return false
}
