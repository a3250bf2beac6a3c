/* retry: not written yet */
