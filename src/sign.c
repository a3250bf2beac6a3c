/* sign: not written yet */
