//! Path scenarios on the simulator: no root and no real socket. Each peer runs a real
//! session of the demo game over a [`SimPathSocket`](ricochet::sim::paths::SimPathSocket),
//! the same per-peer path logic as the WebRTC and relay socket, over a simulated direct
//! network and a simulated relay network; each file proves one thing, named after it.

mod common;

mod a_late_joiner_takes_the_next_seat;
mod a_player_asking_again_and_again_costs_one_epoch_per_cooldown;
mod a_player_who_vanishes_rejoins_its_seat;
mod a_relay_outage_in_a_relay_only_match_is_ridden_out;
mod both_ends_of_every_pair_agree_on_the_path;
mod direct_path_dies_mid_match_and_the_pair_moves_to_the_relay;
mod flapping_direct_path_under_loss_is_held_off;
mod ice_never_completes_and_the_match_plays_on_the_relay;
mod stalled_direct_channel_is_covered_by_copies_over_the_relay;
