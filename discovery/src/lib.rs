//! Node Discovery v4.

pub mod cidr;
pub mod enr;
pub mod node;
pub mod packet;
mod rlp;
