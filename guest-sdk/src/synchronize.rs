//! Synchronization between processes, as `multiprocessing` has it: `Lock`,
//! `RLock`, `Semaphore` and `BoundedSemaphore` are [`SemLock`]s (the one
//! primitive the host holds, CPython's `_multiprocessing.SemLock`);
//! [`Condition`], [`Event`] and [`Barrier`] are built over them as
//! CPython's synchronize.py builds them (`wmp_core::synchronize`); [`Value`]
//! and [`Array`] keep numbers in [`SharedMemory`] beside an RLock. One type
//! each, over the implementation for this target (`imp::synchronize`).
//!
//! A child is given each semaphore lock and shared memory in order
//! ([`Process::pass_semlock`], [`Process::pass_shared_memory`]) and takes
//! them from [`inherited_semlocks`] and [`inherited_shared_memory`]; a
//! composite is passed as its parts ([`Process::pass_sync`]) and rebuilt
//! from them ([`Synchronized::inherit`]). As with CPython's POSIX
//! semaphores, a lock held by a process that ends stays held.

use std::marker::PhantomData;
use std::time::Duration;

use wmp_core::ProcessError;
pub use wmp_core::synchronize::{SEM_VALUE_MAX, SemLockKind, SemLockOps, SharedBytes, SyncError};

use crate::Process;
use crate::imp::synchronize as imp;

/// A semaphore lock shared between processes: this process's handle.
pub struct SemLock(imp::SemLock);

impl SemLock {
    pub fn new(kind: SemLockKind, value: u32, maxvalue: u32) -> SemLock {
        SemLock(imp::SemLock::new(kind, value, maxvalue))
    }

    /// `multiprocessing.Lock()`.
    pub fn lock() -> SemLock {
        SemLock::new(SemLockKind::Semaphore, 1, 1)
    }

    /// `multiprocessing.RLock()`.
    pub fn rlock() -> SemLock {
        SemLock::new(SemLockKind::RecursiveMutex, 1, 1)
    }

    /// `multiprocessing.Semaphore(value)`.
    pub fn semaphore(value: u32) -> SemLock {
        SemLock::new(SemLockKind::Semaphore, value, SEM_VALUE_MAX)
    }

    /// `multiprocessing.BoundedSemaphore(value)`.
    pub fn bounded_semaphore(value: u32) -> SemLock {
        SemLock::new(SemLockKind::Semaphore, value, value)
    }
}

impl SemLockOps for SemLock {
    fn acquire(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.0.acquire(timeout)
    }

    fn release(&self) -> Result<(), SyncError> {
        self.0.release()
    }

    fn count(&self) -> u32 {
        self.0.count()
    }

    fn is_mine(&self) -> bool {
        self.0.is_mine()
    }

    fn value(&self) -> u32 {
        self.0.value()
    }
}

/// Zeroed bytes shared between processes: this process's handle.
pub struct SharedMemory(imp::SharedMemory);

impl SharedMemory {
    pub fn new(size: u32) -> SharedMemory {
        SharedMemory(imp::SharedMemory::new(size))
    }
}

impl SharedBytes for SharedMemory {
    fn read(&self, offset: u32, len: u32) -> Result<Vec<u8>, SyncError> {
        self.0.read(offset, len)
    }

    fn write(&self, offset: u32, bytes: &[u8]) -> Result<(), SyncError> {
        self.0.write(offset, bytes)
    }
}

/// `multiprocessing.Condition`.
pub type Condition = wmp_core::synchronize::Condition<SemLock>;
/// `multiprocessing.Event`.
pub type Event = wmp_core::synchronize::Event<SemLock>;
/// `multiprocessing.Barrier`.
pub type Barrier = wmp_core::synchronize::Barrier<SemLock, SharedMemory>;

/// `multiprocessing.Condition(lock)`, over an RLock if no lock is given.
pub fn condition(lock: Option<SemLock>) -> Condition {
    Condition::new(lock.unwrap_or_else(SemLock::rlock), || SemLock::semaphore(0))
}

/// `multiprocessing.Event()`.
pub fn event() -> Event {
    Event::new(SemLock::lock(), || SemLock::semaphore(0))
}

/// `multiprocessing.Barrier(parties, timeout=timeout)`.
pub fn barrier(parties: u32, timeout: Option<Duration>) -> Barrier {
    Barrier::from_parts(parties, timeout, condition(None), SharedMemory::new(Barrier::SHARED_BYTES))
}

/// A number that [`Value`] and [`Array`] keep in shared memory, as its
/// little-endian bytes (CPython's typecodes `'i'`, `'d'` and the like).
pub trait Scalar: Copy {
    const SIZE: u32;
    fn to_bytes(self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> Self;
}

macro_rules! scalars {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            const SIZE: u32 = std::mem::size_of::<$t>() as u32;
            fn to_bytes(self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }
            fn from_bytes(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("read SIZE bytes"))
            }
        }
    )*};
}
scalars!(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64);

/// `multiprocessing.Array(typecode, size)`: `len` numbers in shared
/// memory, with an RLock ([`get_lock`](Array::get_lock)) that the caller
/// takes around a read-modify-write, as in CPython.
pub struct Array<T> {
    memory: SharedMemory,
    lock: SemLock,
    len: u32,
    _numbers: PhantomData<T>,
}

impl<T: Scalar> Array<T> {
    pub fn new(len: u32) -> Array<T> {
        Array::from_parts(SharedMemory::new(len * T::SIZE), SemLock::rlock(), len)
    }

    fn from_parts(memory: SharedMemory, lock: SemLock, len: u32) -> Array<T> {
        Array { memory, lock, len, _numbers: PhantomData }
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get_lock(&self) -> &SemLock {
        &self.lock
    }

    fn check(&self, index: u32) -> Result<(), SyncError> {
        if index < self.len { Ok(()) } else { Err(SyncError::OutOfRange("invalid index".into())) }
    }

    pub fn get(&self, index: u32) -> Result<T, SyncError> {
        self.check(index)?;
        Ok(T::from_bytes(&self.memory.read(index * T::SIZE, T::SIZE)?))
    }

    pub fn set(&self, index: u32, value: T) -> Result<(), SyncError> {
        self.check(index)?;
        self.memory.write(index * T::SIZE, &value.to_bytes())
    }
}

/// `multiprocessing.Value(typecode, value)`: one number in shared memory
/// with its RLock.
pub struct Value<T>(Array<T>);

impl<T: Scalar> Value<T> {
    pub fn new(value: T) -> Value<T> {
        let array = Array::new(1);
        array.set(0, value).expect("index 0 of one");
        Value(array)
    }

    pub fn get(&self) -> Result<T, SyncError> {
        self.0.get(0)
    }

    pub fn set(&self, value: T) -> Result<(), SyncError> {
        self.0.set(0, value)
    }

    pub fn get_lock(&self) -> &SemLock {
        self.0.get_lock()
    }
}

/// What a child can be given and rebuild: a primitive or a composite, as
/// its semaphore locks and shared memory in order.
pub trait Synchronized: Sized {
    /// Passes its parts to `child`, before it starts.
    fn pass_to(&self, child: &Process) -> Result<(), ProcessError>;
    /// Rebuilds it from the next parts a parent passed (see
    /// [`Inherited`]); None if they are not there.
    fn inherit(from: &mut Inherited) -> Option<Self>;
}

/// The semaphore locks and shared memory this process was given, taken in
/// the order they were passed.
pub struct Inherited {
    semlocks: std::vec::IntoIter<SemLock>,
    shared_memory: std::vec::IntoIter<SharedMemory>,
}

impl Inherited {
    /// Everything the parent passed (the first call takes it all).
    pub fn take() -> Inherited {
        Inherited { semlocks: inherited_semlocks().into_iter(), shared_memory: inherited_shared_memory().into_iter() }
    }

    /// The next thing passed, as a `T`.
    pub fn next<T: Synchronized>(&mut self) -> Option<T> {
        T::inherit(self)
    }
}

impl Synchronized for SemLock {
    fn pass_to(&self, child: &Process) -> Result<(), ProcessError> {
        child.pass_semlock(self)
    }

    fn inherit(from: &mut Inherited) -> Option<Self> {
        from.semlocks.next()
    }
}

impl Synchronized for SharedMemory {
    fn pass_to(&self, child: &Process) -> Result<(), ProcessError> {
        child.pass_shared_memory(self)
    }

    fn inherit(from: &mut Inherited) -> Option<Self> {
        from.shared_memory.next()
    }
}

impl Synchronized for Condition {
    fn pass_to(&self, child: &Process) -> Result<(), ProcessError> {
        self.parts().iter().try_for_each(|lock| lock.pass_to(child))
    }

    fn inherit(from: &mut Inherited) -> Option<Self> {
        Some(Condition::from_parts(from.next()?, from.next()?, from.next()?, from.next()?))
    }
}

impl Synchronized for Event {
    fn pass_to(&self, child: &Process) -> Result<(), ProcessError> {
        self.parts().iter().try_for_each(|lock| lock.pass_to(child))
    }

    fn inherit(from: &mut Inherited) -> Option<Self> {
        Some(Event::from_parts(from.next()?, from.next()?))
    }
}

impl<T: Scalar> Synchronized for Array<T> {
    fn pass_to(&self, child: &Process) -> Result<(), ProcessError> {
        self.memory.pass_to(child)?;
        self.lock.pass_to(child)
    }

    fn inherit(from: &mut Inherited) -> Option<Self> {
        let memory: SharedMemory = from.next()?;
        let len = memory.0.size() / T::SIZE;
        Some(Array::from_parts(memory, from.next()?, len))
    }
}

impl<T: Scalar> Synchronized for Value<T> {
    fn pass_to(&self, child: &Process) -> Result<(), ProcessError> {
        self.0.pass_to(child)
    }

    fn inherit(from: &mut Inherited) -> Option<Self> {
        Some(Value(from.next()?))
    }
}

impl Process {
    /// Gives this child a handle to the semaphore lock before it starts.
    pub fn pass_semlock(&self, lock: &SemLock) -> Result<(), ProcessError> {
        imp::pass_semlock(&self.imp, &lock.0)
    }

    /// Gives this child a handle to the shared memory before it starts.
    pub fn pass_shared_memory(&self, memory: &SharedMemory) -> Result<(), ProcessError> {
        imp::pass_shared_memory(&self.imp, &memory.0)
    }

    /// Gives this child a lock, condition, event, value or array (its
    /// parts, in order); it rebuilds it with [`Inherited::next`].
    pub fn pass_sync(&self, thing: &impl Synchronized) -> Result<(), ProcessError> {
        thing.pass_to(self)
    }
}

/// The semaphore locks the parent passed to this process (taken once).
pub fn inherited_semlocks() -> Vec<SemLock> {
    imp::inherited_semlocks().into_iter().map(SemLock).collect()
}

/// The shared memory the parent passed to this process (taken once).
pub fn inherited_shared_memory() -> Vec<SharedMemory> {
    imp::inherited_shared_memory().into_iter().map(SharedMemory).collect()
}
