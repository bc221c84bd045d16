//! Prints the MillpondConsumer CustomResourceDefinition as YAML.
//!
//! `cargo run -p millpond-crds --bin crdgen > crds/millpondconsumer.yaml`

fn main() {
    print!("{}", millpond_crds::crd_yaml());
}
