// Package enum gives xhttpd's options with a fixed set of values (modes,
// policies, formats) one shape: a small integer type whose names are a
// slice indexed by value, read and written as text (flag.TextVar,
// configuration files), with one form of error:
//
//	mode "poll": want interrupt, busy or hybrid
package enum

import (
	"fmt"
	"strings"
)

// Value is what an enumeration is built on.
type Value interface{ ~int | ~uint8 }

// Name is names[v], or typ(v) for a value without a name.
func Name[T Value](names []string, v T, typ string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, int(v))
}

// Parse is the value named s; what says what is being chosen, for the
// error.
func Parse[T Value](names []string, s, what string) (T, error) {
	for v, name := range names {
		if s == name {
			return T(v), nil
		}
	}
	return 0, fmt.Errorf("%s %q: want %s", what, s, choices(names))
}

// Unmarshal sets *v to the value named b, for UnmarshalText.
func Unmarshal[T Value](names []string, b []byte, what string, v *T) error {
	p, err := Parse[T](names, string(b), what)
	if err == nil {
		*v = p
	}
	return err
}

// Marshal is v's name, for MarshalText; a value without a name is an
// error.
func Marshal[T Value](names []string, v T, what string) ([]byte, error) {
	if v >= 0 && int(v) < len(names) {
		return []byte(names[v]), nil
	}
	return nil, fmt.Errorf("%s %d: want %s", what, int(v), choices(names))
}

// choices is "a, b or c".
func choices(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
