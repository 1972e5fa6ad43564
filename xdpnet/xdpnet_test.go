package xdpnet

import (
	"reflect"
	"testing"

	"github.com/xhttpd/xhttpd/syncookie"
	"github.com/xhttpd/xhttpd/xdp"
)

// A SYN rate becomes a budget per 100 ms window: 0 answers every SYN with a
// cookie, a small rate still leaves the netstack one SYN per window.
func TestSYNCookieBudget(t *testing.T) {
	for rate, want := range map[int]uint32{0: 0, 1: 1, 9: 1, 10: 1, 10000: 1000, 25000: 2500} {
		c := synCookies(syncookie.Key{}, rate, 1500)
		if c.Budget != want || c.Window != synWindow {
			t.Errorf("rate %d: budget %d per %v, want %d per %v", rate, c.Budget, c.Window, want, synWindow)
		}
	}
	if c := synCookies(syncookie.Key{}, 1, 1500); c.MSS4 != 1460 || c.MSS6 != 1440 || c.RcvWnd != 65535 {
		t.Errorf("MTU 1500: %+v", c)
	}
}

// Options.StrayRate becomes a budget per window: none for StraysOff (no
// flow table), 0 for StraysDropped, at least one for any rate.
func TestStrayBudget(t *testing.T) {
	for rate, want := range map[int]*xdp.Strays{
		0:             {Budget: 100, Window: synWindow},
		5000:          {Budget: 500, Window: synWindow},
		1:             {Budget: 1, Window: synWindow},
		StraysDropped: {Budget: 0, Window: synWindow},
		StraysOff:     nil,
	} {
		got, err := strayBudget(rate)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("strayBudget(%d) = %+v (%v), want %+v", rate, got, err, want)
		}
	}
	if _, err := strayBudget(-3); err == nil {
		t.Error("strayBudget(-3) succeeded")
	}
}
