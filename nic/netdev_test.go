package nic

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// genl builds a netdev answer as the kernel sends it after the netlink
// header: the generic-netlink header, then attributes padded to 4 bytes.
func genl(cmd byte, attrs ...[]byte) []byte {
	b := []byte{cmd, netdevVersion, 0, 0}
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func nla(typ uint16, v []byte) []byte {
	b := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

// What a veth answers (Linux 6.18): native XDP with redirect and
// multi-buffer receive, receive metadata, no zero-copy and so no
// xdp-zc-max-segs.
func TestParseNetdevDevVeth(t *testing.T) {
	msg := genl(netdevCmdDevGet,
		nla(netdevADevIfindex, u32(5)),
		nla(netdevADevXDPFeatures, u64(0x23)),
		nla(netdevADevXDPRxMetadata, u64(7)),
		nla(netdevADevXSKFeatures, u64(0)),
	)
	d, err := parseNetdevDev(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := NetdevDev{Ifindex: 5, XDPFeatures: XDPBasic | XDPRedirect | XDPRxSG, XDPRxMetadata: 7}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if got := d.XDPFeatures.Names(); !slices.Equal(got, []string{"basic", "redirect", "rx-sg"}) {
		t.Errorf("names %q", got)
	}
	if got := d.RxMetadata(); !slices.Equal(got, []string{"timestamp", "hash", "vlan-tag"}) {
		t.Errorf("rx metadata %q", got)
	}
	if got := d.XSK(); len(got) != 0 {
		t.Errorf("xsk %q, want none", got)
	}
}

// A zero-copy driver (as ice or mlx5 answer): every feature, a
// xdp-zc-max-segs, XSK transmit checksum; and an attribute from a newer
// kernel, which is skipped; and bits this table does not know, named by
// number.
func TestParseNetdevDevZerocopy(t *testing.T) {
	msg := genl(netdevCmdDevGet,
		nla(netdevADevIfindex, u32(2)),
		nla(netdevADevXDPFeatures, u64(0x7f|1<<9)),
		nla(netdevADevXDPZCMaxSegs, u32(5)),
		nla(netdevADevXSKFeatures, u64(2)),
		nla(42, []byte{1, 2, 3}),
	)
	d, err := parseNetdevDev(msg)
	if err != nil {
		t.Fatal(err)
	}
	if d.XDPFeatures&XDPXSKZerocopy == 0 || d.XDPZCMaxSegs != 5 {
		t.Errorf("%+v: want zero-copy with 5 segments", d)
	}
	want := []string{"basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg", "bit 9"}
	if got := d.XDPFeatures.Names(); !slices.Equal(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
	if got := d.XSK(); !slices.Equal(got, []string{"tx-checksum"}) {
		t.Errorf("xsk %q", got)
	}
}

func TestParseNetdevDevBad(t *testing.T) {
	for name, msg := range map[string][]byte{
		"short header":      {1, 1},
		"features of 2 B":   genl(netdevCmdDevGet, nla(netdevADevXDPFeatures, []byte{1, 0})),
		"attribute too big": append(genl(netdevCmdDevGet), 200, 0, 3, 0, 1, 2, 3, 4),
	} {
		if d, err := parseNetdevDev(msg); err == nil {
			t.Errorf("%s: %+v, want an error", name, d)
		}
	}
}

// napi-get: netlink's "uint" comes in 4 or 8 bytes; a kernel before 6.13
// sends neither the settings nor irq-suspend-timeout, and a NAPI that is not
// threaded no pid; the nested flag bits of a type are not part of it.
func TestParseNAPI(t *testing.T) {
	for _, c := range []struct {
		name    string
		msg     []byte
		want    NAPI
		ifindex uint32
	}{
		{"6.18", genl(netdevCmdNAPIGet,
			nla(netdevANAPIIfindex, u32(7)),
			nla(netdevANAPIID, u32(8193)),
			nla(netdevANAPIIRQ, u32(45)),
			nla(netdevANAPIDeferHardIRQs, u32(2)),
			nla(netdevANAPIGROFlushTimeout, u64(200000)),
			nla(netdevANAPIIRQSuspend, u32(20000000)),
			nla(netdevANAPIThreaded, u32(0)),
		), NAPI{ID: 8193, IRQ: ptr[uint32](45), DeferHardIRQs: ptr[uint32](2), GROFlushTimeout: ptr[uint64](200000), IRQSuspendTimeout: ptr[uint64](20000000), Threaded: ptr[uint32](0)}, 7},
		{"6.9, threaded", genl(netdevCmdNAPIGet,
			nla(netdevANAPIIfindex, u32(3)),
			nla(netdevANAPIID, u32(513)),
			nla(netdevANAPIIRQ|0x8000, u32(61)),
			nla(netdevANAPIPID, u32(912)),
		), NAPI{ID: 513, IRQ: ptr[uint32](61), PID: ptr[uint32](912)}, 3},
		{"no IRQ", genl(netdevCmdNAPIGet,
			nla(netdevANAPIIfindex, u32(4)),
			nla(netdevANAPIID, u32(257)),
			nla(netdevANAPIDeferHardIRQs, u32(0)),
			nla(netdevANAPIGROFlushTimeout, u32(0)),
			nla(netdevANAPIIRQSuspend, u32(0)),
			nla(9, u32(1)), // newer than the table
		), NAPI{ID: 257, DeferHardIRQs: ptr[uint32](0), GROFlushTimeout: ptr[uint64](0), IRQSuspendTimeout: ptr[uint64](0)}, 4},
	} {
		got, idx, err := parseNAPI(c.msg)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" || idx != c.ifindex {
			t.Errorf("%s: ifindex %d, -want +got:\n%s", c.name, idx, diff)
		}
	}
}

func TestParseNetdevQueue(t *testing.T) {
	for _, c := range []struct {
		msg  []byte
		want NetdevQueue
	}{
		{genl(netdevCmdQueueGet, nla(netdevAQueueID, u32(3)), nla(netdevAQueueIfindex, u32(2)), nla(netdevAQueueType, u32(0)), nla(netdevAQueueNAPIID, u32(8196))), NetdevQueue{ID: 3, Rx: true, NAPIID: 8196}},
		{genl(netdevCmdQueueGet, nla(netdevAQueueID, u32(0)), nla(netdevAQueueIfindex, u32(2)), nla(netdevAQueueType, u32(1))), NetdevQueue{ID: 0}},
	} {
		got, idx, err := parseNetdevQueue(c.msg)
		if err != nil || idx != 2 {
			t.Errorf("ifindex %d, %v", idx, err)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("-want +got:\n%s", diff)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// The netdev family on this kernel: lo answers dev-get with no XDP
// features. Needs no privilege.
func TestNetdevLo(t *testing.T) {
	n, err := OpenNetdev()
	if errors.Is(err, ErrNetdevUnsupported) {
		t.Skipf("kernel without the netdev family: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Dev(1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Ifindex != 1 || d.XDPFeatures != 0 {
		t.Errorf("lo: %+v, want ifindex 1 and no XDP features", d)
	}
	if _, err := n.NAPIs(1); err != nil && !errors.Is(err, ErrNetdevUnsupported) {
		t.Errorf("napi-get on lo: %v", err)
	}
	n.ops = map[uint32]bool{}
	if _, err := n.Dev(1); !errors.Is(err, ErrNetdevUnsupported) || !strings.Contains(err.Error(), "dev-get") {
		t.Errorf("without dev-get: %v, want ErrNetdevUnsupported naming the operation", err)
	}
}

// nlmsg builds a netlink message: header, then payload padded to 4 bytes.
func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload)+3)
	binary.NativeEndian.PutUint32(b, uint32(16+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// The netdev family's dumps on 6.18 carry no NLM_F_MULTI: every answer up to
// NLMSG_DONE counts, over as many reads as the kernel needs; answers to
// another request are not ours; an error ends it with its errno; an
// acknowledgement ends a plain request.
func TestNetlinkAnswers(t *testing.T) {
	const family = 0x14
	q0 := genl(netdevCmdQueueGet, nla(netdevAQueueID, u32(0)))
	q1 := genl(netdevCmdQueueGet, nla(netdevAQueueID, u32(1)))
	first := append(nlmsg(family, 0, 7, q0), nlmsg(family, 0, 6, q1)...)
	got, done, err := netlinkAnswers(append(first, nlmsg(family, 0, 7, q1)...), 7)
	if err != nil || done || len(got) != 2 {
		t.Fatalf("first read: %d answers, done %v, %v; want 2, not done", len(got), done, err)
	}
	if !slices.Equal(got[0][:len(q0)], q0) || !slices.Equal(got[1][:len(q1)], q1) {
		t.Errorf("answers % x, want % x and % x", got, q0, q1)
	}
	got, done, err = netlinkAnswers(nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 7, u32(0)), 7)
	if err != nil || !done || len(got) != 0 {
		t.Errorf("done: %d answers, done %v, %v", len(got), done, err)
	}
	errno := int32(-int32(unix.EOPNOTSUPP))
	_, done, err = netlinkAnswers(nlmsg(unix.NLMSG_ERROR, 0, 7, u32(uint32(errno))), 7)
	if !done || !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("error: done %v, %v; want EOPNOTSUPP", done, err)
	}
	got, done, err = netlinkAnswers(append(nlmsg(family, 0, 7, q0), nlmsg(unix.NLMSG_ERROR, 0x100, 7, u32(0))...), 7)
	if err != nil || !done || len(got) != 1 {
		t.Errorf("answer and ack: %d answers, done %v, %v", len(got), done, err)
	}
	if _, _, err := netlinkAnswers([]byte{200, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0}, 7); err == nil {
		t.Error("a message longer than the read: no error")
	}
}
