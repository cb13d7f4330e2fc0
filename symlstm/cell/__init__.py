"""The cell definition: the operations table, the cell as data, its checks, the shipped cells."""
