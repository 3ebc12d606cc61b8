# Regenerates the tiny .npy files tests/test_io.cpp reads: run with /usr/bin/python3
# (the one with numpy) from this folder. Written by NumPy itself, so the tests
# check graphrun against the real format, not against its own writer.
import numpy as np

np.save("f32_2x3.npy", np.arange(6, dtype="<f4").reshape(2, 3) / 4)
np.save("f64_2x2.npy", np.array([[0.5, -1.25], [3.0, 1e-3]], dtype="<f8"))
np.save("i32_3.npy", np.array([7, -8, 2**31 - 1], dtype="<i4"))
np.save("i64_scalar.npy", np.array(-(2**40), dtype="<i8"))
np.save("f32_0x3.npy", np.zeros((0, 3), dtype="<f4"))
np.save("u8_2.npy", np.array([1, 2], dtype="u1"))
np.save("bool_2.npy", np.array([True, False]))
np.save("f32_be_2.npy", np.array([1.0, 2.0], dtype=">f4"))
np.save("f32_fortran_2x2.npy", np.asfortranarray(np.arange(4, dtype="<f4").reshape(2, 2)))
with open("i64_3_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([1, 2, 3], dtype="<i8"), version=(2, 0))
with open("f32_2_v3.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([1.5, 2.5], dtype="<f4"), version=(3, 0))
