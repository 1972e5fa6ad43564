package enum

import "testing"

type color uint8

var colorNames = []string{"red", "green", "blue"}

func TestRoundTrip(t *testing.T) {
	for v := range color(len(colorNames)) {
		b, err := Marshal(colorNames, v, "color")
		if err != nil {
			t.Fatal(err)
		}
		var got color
		if err := Unmarshal(colorNames, b, "color", &got); err != nil || got != v {
			t.Errorf("%s: got %v, %v", b, got, err)
		}
		if Name(colorNames, v, "color") != string(b) {
			t.Errorf("Name(%d) = %q, want %q", v, Name(colorNames, v, "color"), b)
		}
	}
}

func TestErrors(t *testing.T) {
	got := color(1)
	err := Unmarshal(colorNames, []byte("mauve"), "color", &got)
	if err == nil || err.Error() != `color "mauve": want red, green or blue` {
		t.Errorf("error %v", err)
	}
	if got != 1 {
		t.Errorf("a bad name changed the value to %d", got)
	}
	if _, err := Marshal(colorNames, color(7), "color"); err == nil {
		t.Error("Marshal of a value without a name succeeded")
	}
	if s := Name(colorNames, color(7), "color"); s != "color(7)" {
		t.Errorf("Name of a value without a name: %q", s)
	}
	if _, err := Parse[color]([]string{"only"}, "x", "it"); err == nil || err.Error() != `it "x": want only` {
		t.Errorf("one choice: %v", err)
	}
}
