//! pcap file writer. (Being written: see issue 2.)
