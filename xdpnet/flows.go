package xdpnet

import (
	"log/slog"
	"time"

	"github.com/xhttpd/xhttpd/stack"
	"github.com/xhttpd/xhttpd/xdp"
)

// flowRefresh is how often the netstack's connections are put back in the
// XDP program's flow table while it drops strays.
const flowRefresh = time.Second

// A flowKeeper puts the netstack's connections back in the XDP program's
// flow table while the program drops strays. The table is an LRU that the
// program fills from SYNs; a connection idle long enough is evicted, and
// its segments are then strays: within the budget they still reach the
// netstack, which knows the connection, but under a flood that spends the
// budget they would be dropped for as long as the flood lasts. With the
// keeper, a connection is back in the table within a period, and its
// client's retransmission gets through. While no stray is dropped it does
// nothing.
type flowKeeper struct {
	strays func() (uint64, error)                          // the program's strays dropped so far
	conns  func(dst []stack.Connection) []stack.Connection // the netstack's connections
	add    func([]xdp.Flow) error                          // into the table

	last  uint64 // strays at the last tick
	buf   []stack.Connection
	flows []xdp.Flow
}

// tick puts every connection in the table if strays were dropped since the
// last tick, and returns how many it put there.
func (k *flowKeeper) tick() (int, error) {
	n, err := k.strays()
	if err != nil {
		return 0, err
	}
	flooded := n > k.last
	k.last = n
	if !flooded {
		return 0, nil
	}
	k.buf = k.conns(k.buf[:0])
	k.flows = k.flows[:0]
	for _, c := range k.buf {
		k.flows = append(k.flows, xdp.Flow{Local: c.Local, Remote: c.Remote})
	}
	return len(k.flows), k.add(k.flows)
}

// keepFlows runs a flowKeeper for steer and st every flowRefresh until the
// returned function is called, which waits for it to stop.
func keepFlows(steer *xdp.Steering, st *stack.Stack) (stop func()) {
	k := &flowKeeper{
		strays: func() (uint64, error) {
			c, err := steer.Counters()
			return c.Strays, err
		},
		conns: st.AppendConnections,
		add:   steer.AddFlows,
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(flowRefresh)
		defer t.Stop()
		var failing string // the error logged last: once, not every second
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			n, err := k.tick()
			if err != nil {
				if err.Error() != failing {
					slog.Warn("flow table refresh", "err", err)
					failing = err.Error()
				}
				continue
			}
			failing = ""
			if n > 0 {
				slog.Debug("flow table refreshed under a flood of strays", "connections", n)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
