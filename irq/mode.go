package irq

import "github.com/xhttpd/xhttpd/internal/enum"

// Mode is how a loop waits for frames.
type Mode int

const (
	// Interrupt sleeps whenever the rx ring is empty: no CPU
	// while idle, a wake-up's latency on every burst.
	Interrupt Mode = iota
	// Busy never sleeps: it spins on the rings, for the lowest latency at
	// the price of a core per queue.
	Busy
	// Hybrid is NAPI's idea: sleep while idle; once woken, poll in rounds
	// while work keeps coming; sleep again after an idle spell that
	// adapts to the load.
	Hybrid
)

var modeNames = []string{Interrupt: "interrupt", Busy: "busy", Hybrid: "hybrid"}

func (m Mode) String() string { return enum.Name(modeNames, m, "Mode") }

// ParseMode reads a -mode flag.
func ParseMode(s string) (Mode, error) { return enum.Parse[Mode](modeNames, s, "mode") }

// UnmarshalText is ParseMode, for flag.TextVar and configuration files.
func (m *Mode) UnmarshalText(b []byte) error { return enum.Unmarshal(modeNames, b, "mode", m) }

// MarshalText is the mode's name.
func (m Mode) MarshalText() ([]byte, error) { return enum.Marshal(modeNames, m, "mode") }
