package nic

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// An ice-like answer: combined channels and one other (the misc vector).
func TestParseChannels(t *testing.T) {
	buf := make([]byte, sizeofChannels)
	for i, v := range []uint32{unix.ETHTOOL_GCHANNELS, 0, 0, 1, 63, 0, 0, 1, 8} {
		binary.NativeEndian.PutUint32(buf[4*i:], v)
	}
	c, err := parseChannels(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := Channels{MaxOther: 1, MaxCombined: 63, Other: 1, Combined: 8}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if got := c.SetCommand("eth1", 4); got != "ethtool -L eth1 combined 4" {
		t.Errorf("SetCommand: %q", got)
	}
	if got := (Channels{MaxRx: 2, MaxTx: 2, Rx: 2, Tx: 2}).SetCommand("veth0", 1); got != "ethtool -L veth0 rx 1" {
		t.Errorf("SetCommand without combined channels: %q", got)
	}
	if _, err := parseChannels(buf[:20]); err == nil {
		t.Error("short: no error")
	}
	if _, err := ReadChannels("lo"); err == nil {
		t.Error("lo has channels?")
	}
}
