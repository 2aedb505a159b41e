"""The aidc wire contract: topics, message schemas, codecs, the supervised MQTT link, and the
hardware both ends know by name."""
