/* verify: not written yet */
