"""My data, exported (PIPL art. 45): a signed bundle an owner downloads and anyone can check offline."""
