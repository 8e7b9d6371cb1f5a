//! Progress of long computations, reported to the caller through a callback. The library never
//! draws or prints: the `keel` command turns these reports into progress bars on stderr, and a
//! program using the library can log them, forward them or ignore them (`&mut |_| {}`).

/// One finished unit of work (an epoch, an iteration) out of `total`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick<'a> {
    /// Units finished so far, counted from the start of the whole run (a resumed run's first
    /// report counts the units done before it).
    pub done: usize,
    /// Units in the whole run.
    pub total: usize,
    /// Named values to show beside the count, such as `[("loss", 0.12), ("val", 0.15)]`.
    pub values: &'a [(&'static str, f64)],
}

/// What a long computation reports its [`Tick`]s to.
pub type Observer<'o> = dyn FnMut(&Tick) + 'o;
