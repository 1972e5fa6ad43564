package stack

import (
	"context"
	"slices"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// xhttpd sets no iptables rules, and third_party/gvisor-patches/0019 lets
// every packet skip the netstack's iptables hooks until some rule is set.
// Once one is, the hooks must apply again: a rule that drops everything at
// a hook keeps a client out, over both families, and counts the drops
// there. (Postrouting has only NAT's table, whose rules see a connection's
// first packet, never a server's answers.)
func TestIPTablesHooksApplyOnceSet(t *testing.T) {
	hooks := []struct {
		name    string
		table   gvstack.TableID
		hook    gvstack.Hook
		dropped func(tcpip.IPStats) *tcpip.StatCounter
	}{
		{"prerouting", gvstack.MangleID, gvstack.Prerouting, func(s tcpip.IPStats) *tcpip.StatCounter { return s.IPTablesPreroutingDropped }},
		{"input", gvstack.FilterID, gvstack.Input, func(s tcpip.IPStats) *tcpip.StatCounter { return s.IPTablesInputDropped }},
		{"output", gvstack.FilterID, gvstack.Output, func(s tcpip.IPStats) *tcpip.StatCounter { return s.IPTablesOutputDropped }},
	}
	for _, h := range hooks {
		for _, network := range []string{"tcp4", "tcp6"} {
			t.Run(h.name+"/"+network, func(t *testing.T) {
				q := newFakeQueue()
				st, l := serverStack(t, q, Config{MTU: 1500}, network)
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
				cs := clientStack(t, st, q, 1500, nil, nil)
				server, proto := serverV4, tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber)
				if network == "tcp6" {
					server, proto = serverV6, ipv6.ProtocolNumber
				}
				dial := func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					defer cancel()
					c, err := dialServer(ctx, cs, server)
					if err == nil {
						c.Close()
					}
					return err
				}
				if err := dial(); err != nil {
					t.Fatalf("without rules: %v", err)
				}

				ipt := st.s.IPTables()
				v6 := proto == ipv6.ProtocolNumber
				table := ipt.GetTable(h.table, v6)
				table.Rules = slices.Clone(table.Rules) // shared with ipt's own
				table.Rules[table.BuiltinChains[h.hook]].Target = &gvstack.DropTarget{NetworkProtocol: proto}
				ipt.ReplaceTable(h.table, table, v6)
				if err := dial(); err == nil {
					t.Fatalf("a %s rule that drops everything let a client in", h.name)
				}
				if n := h.dropped(st.s.Stats().IP).Value(); n == 0 {
					t.Errorf("the %s hook counted no drop", h.name)
				}
			})
		}
	}
}
