package xdpnet

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/xhttpd/xhttpd/stack"
	"github.com/xhttpd/xhttpd/xdp"
)

// The keeper puts the connections in the table on a tick after strays
// were dropped, and does nothing on a tick after none were.
func TestFlowKeeper(t *testing.T) {
	conns := []stack.Connection{
		{Local: netip.MustParseAddrPort("198.18.0.1:80"), Remote: netip.MustParseAddrPort("198.18.0.2:40000")},
		{Local: netip.MustParseAddrPort("[2001:2::1]:80"), Remote: netip.MustParseAddrPort("[2001:2::2]:40001")},
	}
	var strays uint64
	var added [][]xdp.Flow
	k := &flowKeeper{
		strays: func() (uint64, error) { return strays, nil },
		conns:  func(dst []stack.Connection) []stack.Connection { return append(dst, conns...) },
		add: func(f []xdp.Flow) error {
			added = append(added, slices.Clone(f))
			return nil
		},
	}
	want := []xdp.Flow{{Local: conns[0].Local, Remote: conns[0].Remote}, {Local: conns[1].Local, Remote: conns[1].Remote}}
	for i, step := range []struct {
		strays uint64
		adds   bool
	}{
		{0, false},   // quiet
		{500, true},  // a flood
		{900, true},  // it lasts
		{900, false}, // it ended
		{901, true},  // one stray dropped
	} {
		strays = step.strays
		added = nil
		n, err := k.tick()
		if err != nil {
			t.Fatal(err)
		}
		if !step.adds {
			if n != 0 || added != nil {
				t.Errorf("tick %d at %d strays: added %v", i, step.strays, added)
			}
			continue
		}
		if n != 2 || len(added) != 1 || !slices.Equal(added[0], want) {
			t.Errorf("tick %d at %d strays: added %v (%d), want %v", i, step.strays, added, n, want)
		}
	}

	boom := errors.New("boom")
	k.strays = func() (uint64, error) { return 0, boom }
	if _, err := k.tick(); !errors.Is(err, boom) {
		t.Errorf("tick with the counters failing: %v", err)
	}
}
