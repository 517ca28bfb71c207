"""The SQLite store: the writer thread, all migrations, ids, counts; imports nothing above."""
