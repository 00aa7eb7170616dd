//! devp2p
