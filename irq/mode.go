package irq

import "fmt"

// Mode is how a loop waits for frames.
type Mode int

const (
	// Interrupt sleeps in poll(2) whenever the rx ring is empty: no CPU
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

var modeNames = [...]string{Interrupt: "interrupt", Busy: "busy", Hybrid: "hybrid"}

func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads a -mode flag.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("mode %q: want interrupt, busy or hybrid", s)
}

// UnmarshalText is ParseMode, for flag.TextVar and configuration files.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err == nil {
		*m = v
	}
	return err
}

// MarshalText is the mode's name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
