/* util: not written yet */
