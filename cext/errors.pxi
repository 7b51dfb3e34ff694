# Shared by every unit: how a C-level parse failure becomes a Python exception.
#
# C-level parsers return 0 on success or a negative error code; each unit keeps a table from
# code to a precise message, and the Python wrappers raise ValueError with that message.

cdef inline object _error_message(const char* const* table, Py_ssize_t size, int code):
    cdef Py_ssize_t index = -code
    if 0 < index < size and table[index] != NULL:
        return table[index].decode("ascii")
    return f"unknown error {code}"
