//! Host tests of the kernel crate's one intrusive list
//! (`rust-sched-ghost/sys/list.rs`): order, removal from anywhere, the
//! one-list-per-kind rule, rotation, and the per-CPU wrapper's checks.
//!
//! The file uses `crate::sys::rq::Rq` (only its `cpu()`) and
//! `crate::warn_once!`; both are stubbed here, the warnings counted.

use std::sync::atomic::{AtomicUsize, Ordering};

static WARNINGS: AtomicUsize = AtomicUsize::new(0);

/// The kernel's `warn_once!`, counted (every time, not once: the tests
/// check each case).
#[macro_export]
macro_rules! warn_once {
    ($what:literal) => {{
        $crate::warned($what);
    }};
}

fn warned(_what: &str) {
    WARNINGS.fetch_add(1, Ordering::SeqCst);
}

#[path = "../../sys/list.rs"]
pub mod list_impl;

mod sys {
    pub use super::list_impl as list;

    pub mod rq {
        /// A runqueue: only its CPU matters to the list.
        pub struct Rq(pub i32);

        impl Rq {
            pub fn cpu(&self) -> i32 {
                self.0
            }
        }
    }
}

use list_impl::{Links, List, RqList};
use sys::rq::Rq;

struct Item {
    v: u32,
    a: Links<Item, 0>,
    b: Links<Item, 1>,
}

impl_has_links!(Item, a, 0);
impl_has_links!(Item, b, 1);

fn item(v: u32) -> Box<Item> {
    Box::new(Item {
        v,
        a: Links::new(),
        b: Links::new(),
    })
}

fn values<const ID: usize>(l: &List<Item, ID>) -> Vec<u32>
where
    Item: list_impl::HasLinks<ID>,
{
    l.iter().map(|i| i.v).collect()
}

/// Removes every item (so that none is dropped while linked).
fn clear<const ID: usize>(l: &mut List<Item, ID>, items: &[Box<Item>])
where
    Item: list_impl::HasLinks<ID>,
{
    for i in items {
        l.remove(i);
    }
    assert!(l.is_empty());
}

#[test]
fn order_and_removal_anywhere() {
    let items: Vec<Box<Item>> = (0..5).map(item).collect();
    let mut l = List::<Item, 0>::new();
    assert!(l.is_empty());
    for i in &items[1..4] {
        assert!(l.push_back(i));
    }
    assert!(l.push_front(&items[0]));
    assert!(l.push_back(&items[4]));
    assert_eq!(values(&l), [0, 1, 2, 3, 4]);
    assert_eq!(l.len(), 5);

    // Middle, head, tail.
    assert!(l.remove(&items[2]));
    assert_eq!(values(&l), [0, 1, 3, 4]);
    assert!(l.remove(&items[0]));
    assert_eq!(values(&l), [1, 3, 4]);
    assert!(l.remove(&items[4]));
    assert_eq!(values(&l), [1, 3]);
    assert_eq!(l.len(), 2);
    assert!(!l.contains(&items[4]));
    // Not on the list: nothing happens.
    assert!(!l.remove(&items[4]));
    assert_eq!(l.len(), 2);

    // Removed items go back at either end.
    assert!(l.push_back(&items[4]));
    assert!(l.push_front(&items[0]));
    assert_eq!(values(&l), [0, 1, 3, 4]);
    clear(&mut l, &items);
    // The last removal left no head or tail behind.
    assert!(l.push_back(&items[2]));
    assert_eq!(values(&l), [2]);
    clear(&mut l, &items);
}

#[test]
fn one_list_per_kind() {
    let items: Vec<Box<Item>> = (0..2).map(item).collect();
    let mut l1 = List::<Item, 0>::new();
    let mut l2 = List::<Item, 0>::new();
    let mut other_kind = List::<Item, 1>::new();
    assert!(l1.push_back(&items[0]));
    // Already on a list of this kind: refused, both lists unchanged.
    assert!(!l1.push_back(&items[0]));
    assert!(!l2.push_front(&items[0]));
    assert_eq!(values(&l1), [0]);
    assert!(l2.is_empty());
    // Another list's item is not removed (and its list is intact).
    assert!(!l2.remove(&items[0]));
    assert!(l1.contains(&items[0]) && !l2.contains(&items[0]));
    assert_eq!(values(&l1), [0]);
    // The other kind of links is independent.
    assert!(other_kind.push_back(&items[0]));
    assert!(other_kind.push_back(&items[1]));
    assert_eq!(values(&other_kind), [0, 1]);
    assert_eq!(values(&l1), [0]);
    clear(&mut l1, &items);
    clear(&mut other_kind, &items);
    assert!(l2.push_back(&items[0]));
    clear(&mut l2, &items);
}

#[test]
fn rotate_first_moves_the_first_match_to_the_back() {
    let items: Vec<Box<Item>> = (0..4).map(item).collect();
    let mut l = List::<Item, 0>::new();
    for i in &items {
        l.push_back(i);
    }
    assert_eq!(l.rotate_first(|i| i.v % 2 == 1).map(|i| i.v), Some(1));
    assert_eq!(values(&l), [0, 2, 3, 1]);
    assert_eq!(l.rotate_first(|i| i.v == 1).map(|i| i.v), Some(1));
    assert_eq!(values(&l), [0, 2, 3, 1]);
    assert_eq!(l.rotate_first(|i| i.v > 9).map(|i| i.v), None);
    assert_eq!(values(&l), [0, 2, 3, 1]);
    assert_eq!(l.len(), 4);
    clear(&mut l, &items);
}

#[test]
fn rq_list_checks_its_cpu_and_nesting() {
    let items: Vec<Box<Item>> = (0..2).map(item).collect();
    let l = RqList::<Item, 1>::new(3);
    let before = WARNINGS.load(Ordering::SeqCst);
    assert_eq!(l.with(&Rq(3), |l| l.push_back(&items[0])), Some(true));
    // Another CPU's runqueue: refused, with a warning.
    assert_eq!(l.with(&Rq(2), |l| l.push_back(&items[1])), None);
    assert!(WARNINGS.load(Ordering::SeqCst) > before);
    // A nested call: refused, the outer one goes on.
    let nested = l.with(&Rq(3), |_| l.with(&Rq(3), |l| l.len()));
    assert_eq!(nested, Some(None));
    assert_eq!(l.with(&Rq(3), |l| l.len()), Some(1));
    assert_eq!(l.with(&Rq(3), |l| l.remove(&items[0])), Some(true));
}

#[test]
fn an_item_dropped_while_linked_is_reported() {
    let mut l = List::<Item, 0>::new();
    let it = item(7);
    l.push_back(&it);
    let before = WARNINGS.load(Ordering::SeqCst);
    drop(it);
    assert!(WARNINGS.load(Ordering::SeqCst) > before);
    // The list is not used again (dropping it touches no item).
    assert_eq!(l.len(), 1);
}
