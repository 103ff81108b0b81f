"""The typed records between the stages and the pure JSON -> record parser."""
