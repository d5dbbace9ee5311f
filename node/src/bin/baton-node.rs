fn main() {
    println!("{}", baton_node::EBPF_OBJECT.len());
}
