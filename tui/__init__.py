"""The Textual operator console; it speaks to the core only through protocols/ over MQTT."""
