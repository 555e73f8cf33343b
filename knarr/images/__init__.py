"""Images: names and tags, unpack, save and load, built-in images."""
