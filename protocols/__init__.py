"""The aidc wire contract: topics, message schemas, codecs and the supervised MQTT link."""
